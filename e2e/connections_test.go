package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

const viewToken = "connection-view-api-token-0123"

// apiClient calls the real API and keeps every answer, for the secret scan.
type apiClient struct {
	t       *testing.T
	url     string
	answers []string
}

func (c *apiClient) do(method, path string, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+viewToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	c.answers = append(c.answers, string(body))
	if out != nil {
		require.NoError(c.t, json.Unmarshal(body, out), string(body))
	}
	return resp.StatusCode
}

func (b *bundle) api(t *testing.T) *apiClient {
	t.Helper()
	targets := registry.Targets(b.providers)
	a, err := api.New(api.Config{Token: viewToken, Targets: targets, Cooldown: b.cooldown},
		b.store, b.queue, census.New(b.store, b.queue, targets), b.log)
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &apiClient{t: t, url: srv.URL}
}

// TestConnectionView: the connection view and list tell each connection's
// state, expiry, task and last failure as the scanner and the workers see
// them, page through a state, and never show a secret; retry only acts on a
// failing connection.
func TestConnectionView(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	c := b.api(t)
	now := time.Now().UTC().Truncate(time.Second)
	fresh, soon, past := now.Add(time.Hour), now.Add(5*time.Minute), now.Add(-time.Hour)
	good := func(n string) *string { u, p := seller(n); return creds(u, p) }
	rejected := creds("nobody-knows-me@itc.com", "rejected-password-44")
	b.env.Insert(t,
		testenv.Row{ID: 41, InputFields: good("v41"), AccessToken: testenv.Str("at-secret-41"), ExpiresAt: &fresh},
		testenv.Row{ID: 42, InputFields: good("v42"), AccessToken: testenv.Str("at-secret-42"), ExpiresAt: &soon},
		testenv.Row{ID: 43, InputFields: good("v43"), AccessToken: testenv.Str("at-secret-43"), ExpiresAt: &past},
		testenv.Row{ID: 44, InputFields: rejected, AccessToken: testenv.Str("at-secret-44"), ExpiresAt: &past},
		testenv.Row{ID: 45, InputFields: good("v45"), IsActive: "inactive"},
		testenv.Row{ID: 46, InputFields: good("v46")},
	)

	var v api.Connection
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/41", &v))
	assert.Equal(t, int64(41), v.ConnectionID)
	assert.Equal(t, "16", v.IntegrationType)
	assert.Equal(t, "ajio", v.Provider)
	assert.True(t, v.Active)
	assert.Equal(t, token.StateFresh, v.State)
	require.NotNil(t, v.ExpiresAt)
	assert.True(t, fresh.Equal(*v.ExpiresAt))
	require.NotNil(t, v.ExpiresInSeconds)
	assert.InDelta(t, 3600, *v.ExpiresInSeconds, 120)
	require.NotNil(t, v.NextRefreshAt)
	assert.True(t, fresh.Add(-10*time.Minute).Equal(*v.NextRefreshAt), "the refresh window opens 10m before expiry")
	assert.Equal(t, []api.TaskState{{Queue: b.env.Queue, State: "none"}, {Queue: task.UrgentQueue(b.env.Queue), State: "none"}}, v.Tasks)
	assert.Nil(t, v.LastAttempt)

	for _, tc := range []struct {
		id   string
		want token.State
	}{{"42", token.StateDue}, {"43", token.StateExpired}, {"46", token.StateExpired}} {
		v = api.Connection{}
		require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/"+tc.id, &v))
		assert.Equal(t, tc.want, v.State, "connection %s", tc.id)
	}
	assert.Nil(t, v.ExpiresAt, "46 never had a token")
	assert.Nil(t, v.ExpiresInSeconds)
	v = api.Connection{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/45", &v))
	assert.False(t, v.Active)
	assert.Nil(t, v.NextRefreshAt)
	var e struct{ Error string }
	assert.Equal(t, http.StatusNotFound, c.do("GET", "/v1/connections/404", &e))
	assert.Equal(t, http.StatusBadRequest, c.do("GET", "/v1/connections/x", &e))

	// Paging: one connection a page, the cursor carries on.
	var got []int64
	after := ""
	for range 10 {
		var p api.List
		require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections?state=expired&provider=ajio&limit=1&after="+after, &p))
		for _, l := range p.Connections {
			got = append(got, l.ConnectionID)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	assert.Equal(t, []int64{43, 44, 46}, got)
	var p api.List
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections?state=due&provider=16", &p))
	require.Len(t, p.Connections, 1)
	assert.Equal(t, int64(42), p.Connections[0].ConnectionID)
	assert.Equal(t, http.StatusBadRequest, c.do("GET", "/v1/connections?state=fresh", &e))
	assert.Equal(t, http.StatusBadRequest, c.do("GET", "/v1/connections?state=due&provider=nosuch", &e))

	// The scan queues 42, 43, 44 and 46; before a worker runs they are pending.
	b.scanOnce(t)
	v = api.Connection{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/44", &v))
	assert.Equal(t, "pending", v.Tasks[0].State)
	assert.Equal(t, "queued: next free worker", v.NextRefresh)

	// Not failing: retry refuses, refresh is the verb for that.
	assert.Equal(t, http.StatusConflict, c.do("POST", "/v1/connections/41/retry", &e))
	assert.Contains(t, e.Error, "not failing")

	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "44's rejection to be archived", func() bool { return len(b.archived(t)) == 1 })
	testenv.Eventually(t, 20*time.Second, "the others to be refreshed", b.settled)

	v = api.Connection{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/44", &v))
	assert.Equal(t, token.StateFailing, v.State)
	assert.Equal(t, "archived", v.Tasks[0].State)
	assert.Equal(t, 1, v.Attempts)
	require.NotNil(t, v.LastAttempt)
	assert.Equal(t, "permanent", v.LastAttempt.Outcome)
	assert.Contains(t, v.LastAttempt.Reason, "rejected the credentials")
	require.NotNil(t, v.FailureAgeSeconds)
	assert.GreaterOrEqual(t, *v.FailureAgeSeconds, int64(0))
	require.NotNil(t, v.CredentialsChanged)
	assert.False(t, *v.CredentialsChanged)
	require.NotNil(t, v.NextRefreshAt)
	assert.True(t, v.NextRefreshAt.After(now.Add(50*time.Minute)), "after the 1h cooldown: %s", v.NextRefreshAt)

	p = api.List{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections?state=failing", &p))
	require.Len(t, p.Connections, 1)
	assert.Equal(t, int64(44), p.Connections[0].ConnectionID)
	assert.Contains(t, p.Connections[0].Reason, "rejected the credentials")
	p = api.List{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections?state=expired", &p))
	assert.Empty(t, p.Connections, "43 and 46 were refreshed; 44 is failing, not expired")

	// The seller fixes the credentials: the view says the next scan retries.
	u, pw := seller("v44")
	fixed := *creds(u, pw)
	b.env.IE.MustExec(`UPDATE ie_appinstall_connection SET inputFields = ? WHERE id = 44`, fixed)
	v = api.Connection{}
	require.Equal(t, http.StatusOK, c.do("GET", "/v1/connections/44", &v))
	require.NotNil(t, v.CredentialsChanged)
	assert.True(t, *v.CredentialsChanged)

	var q api.Queued
	require.Equal(t, http.StatusAccepted, c.do("POST", "/v1/connections/44/retry", &q))
	testenv.Eventually(t, 20*time.Second, "the retry to refresh 44", func() bool {
		row := b.env.Get(t, 44)
		return row.AccessToken != nil && *row.AccessToken != "at-secret-44"
	})

	secrets := []string{viewToken, "rejected-password-44", "nobody-knows-me", fixed, u, pw}
	for _, id := range []int64{41, 42, 43, 44, 46} {
		row := b.env.Get(t, id)
		secrets = append(secrets, *row.AccessToken, *row.InputFields)
		secrets = append(secrets, token.Fingerprint([]byte(*row.InputFields), ""))
	}
	secrets = append(secrets, token.Fingerprint([]byte(*rejected), ""))
	for _, a := range c.answers {
		for _, s := range secrets {
			assert.False(t, strings.Contains(a, s), "an answer holds a secret: %s", a)
		}
	}
}
