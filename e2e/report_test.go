package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

const reportAPIToken = "report-api-token-0123456789"

// reporter is a consumer of tokens: it reports the token a marketplace
// refused to one of the API replicas, and keeps every answer.
type reporter struct {
	t    *testing.T
	urls []string // one API per refresher replica

	mu      sync.Mutex
	answers []string
}

// reply is one answer to a report.
type reply struct {
	status int
	body   api.Reported
	raw    string
	took   time.Duration
}

// serveAPI starts one more API replica over the bundle's store and queue.
func (r *reporter) serveAPI(b *bundle) {
	// Each replica has its own pool, as a refresher process does, sized
	// small: the burst waits for the pool, not the server's connections.
	store, err := mysql.Open(context.Background(), b.env.WMSDSN, b.env.IEDSN, mysql.Options{MaxOpenConns: 8})
	require.NoError(r.t, err)
	r.t.Cleanup(func() { store.Close() })
	targets := registry.Targets(b.providers)
	a, err := api.New(api.Config{Token: reportAPIToken, Targets: targets, Cooldown: b.cooldown}, store, b.queue, nil, b.log)
	require.NoError(r.t, err)
	srv := httptest.NewServer(a)
	r.t.Cleanup(srv.Close)
	r.urls = append(r.urls, srv.URL)
}

// report posts the SHA-256 of tok to replica i, with wait (none when empty).
func (r *reporter) report(i int, id int64, tok, wait string) reply {
	sum := sha256.Sum256([]byte(tok))
	url := fmt.Sprintf("%s/v1/connections/%d/refresh", r.urls[i%len(r.urls)], id)
	if wait != "" {
		url += "?wait=" + wait
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"rejected_token_sha256":"`+hex.EncodeToString(sum[:])+`"}`))
	if !assert.NoError(r.t, err) {
		return reply{}
	}
	req.Header.Set("Authorization", "Bearer "+reportAPIToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if !assert.NoError(r.t, err) {
		return reply{}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	assert.NoError(r.t, err)
	r.mu.Lock()
	r.answers = append(r.answers, string(raw))
	r.mu.Unlock()
	var body api.Reported
	assert.NoError(r.t, json.Unmarshal(raw, &body), string(raw))
	return reply{status: resp.StatusCode, body: body, raw: string(raw), took: took}
}

// all sends n reports of tok at once, spread over the replicas.
func (r *reporter) all(n int, id int64, tok, wait string) []reply {
	out := make([]reply, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = r.report(i, id, tok, wait)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// assertNoSecretsIn checks every answer the reporter got.
func (r *reporter) assertNoSecretsIn(secrets []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(r.t, r.answers)
	for _, a := range r.answers {
		for _, s := range secrets {
			require.NotEmpty(r.t, s)
			assert.NotContains(r.t, a, s, "an answer holds a secret")
		}
	}
}

// figures logs the answer times and statuses of a burst of reports.
func figures(t *testing.T, name string, replies []reply) {
	t.Helper()
	took := make([]time.Duration, 0, len(replies))
	byStatus := map[int]int{}
	for _, r := range replies {
		took = append(took, r.took)
		byStatus[r.status]++
	}
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[int(p*float64(len(took)-1)+0.5)] }
	t.Logf("%s: %d reports, answers by status %v, answer time p50 %s, p99 %s, max %s",
		name, len(replies), byStatus, pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond),
		took[len(took)-1].Round(time.Millisecond))
}

// TestRejectedTokenReports is issue 22's acceptance run, on the OAuth flow
// with refresh-token rotation and no grace (a second call with a retired
// refresh token would be refused with invalid_grant, and reuse detection
// would revoke the whole token family): 50 consumers report the same
// refused token at once over two refresher replicas (two APIs, two worker
// pools) while the marketplace takes 1s. One marketplace call; all 50 get
// 200 with the same new expiry; the row holds the new token. A late report
// of the old token costs no call; a report of the new one costs one more.
func TestRejectedTokenReports(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	b.sandbox.SetFaults(sandbox.Faults{Latency: time.Second, Rotate: true, RotationGrace: 0, ReuseDetection: true})
	const id, subject = 7, "report-7"
	rt0 := sandbox.RefreshToken(subject)
	fresh := time.Now().UTC().Add(50 * time.Minute).Truncate(time.Second)
	b.env.Insert(t, testenv.Row{ID: id, IntegrationType: "42", InputFields: testenv.Str(`{}`),
		AccessToken: testenv.Str("oauth-at-revoked-early-7"), RefreshToken: testenv.Str(rt0), ExpiresAt: &fresh})
	b.startRefresher(t)
	b.startRefresher(t) // a second replica on the same Redis and queues
	r := &reporter{t: t}
	r.serveAPI(b)
	r.serveAPI(b)

	replies := r.all(50, id, "oauth-at-revoked-early-7", "20s")
	figures(t, "50 reports of one rejected token", replies)
	t.Logf("marketplace calls: %d", b.sandbox.Calls(subject))
	row := b.env.Get(t, id)
	require.NotNil(t, row.AccessToken)
	at1, rt1 := *row.AccessToken, *row.RefreshToken
	assert.NotEqual(t, "oauth-at-revoked-early-7", at1, "the row holds a new token")
	owner, ok := b.sandbox.IssuedTo(at1)
	assert.True(t, ok && owner == subject, "the row holds the token the call issued")
	require.NotNil(t, row.ExpiresAt)
	for i, rep := range replies {
		require.Equal(t, http.StatusOK, rep.status, "report %d: %s", i, rep.raw)
		assert.Equal(t, "replaced", rep.body.Status)
		require.NotNil(t, rep.body.ExpiresAt, rep.raw)
		assert.True(t, row.ExpiresAt.Equal(*rep.body.ExpiresAt), "report %d: the new expiry %s, not %s", i, row.ExpiresAt, rep.body.ExpiresAt)
		require.NotNil(t, rep.body.ExpiresInSeconds)
		assert.InDelta(t, 3600, *rep.body.ExpiresInSeconds, 60)
	}
	assert.Equal(t, 1, b.sandbox.Calls(subject), "one marketplace call for 50 reports")

	// A report of the old token arriving late: answered at once, no call.
	late := r.report(0, id, "oauth-at-revoked-early-7", "20s")
	assert.Equal(t, http.StatusOK, late.status, late.raw)
	assert.Equal(t, "replaced", late.body.Status)
	assert.Less(t, late.took, time.Second, "no wait for a replaced token")
	late = r.report(1, id, "oauth-at-revoked-early-7", "")
	assert.Equal(t, http.StatusOK, late.status, late.raw)
	testenv.Eventually(t, 10*time.Second, "the queues to settle", b.allSettled)
	assert.Equal(t, 1, b.sandbox.Calls(subject), "a replaced token costs no call")

	// The new token is refused in turn: its report costs one more call.
	again := r.report(1, id, at1, "20s")
	require.Equal(t, http.StatusOK, again.status, again.raw)
	row = b.env.Get(t, id)
	assert.NotEqual(t, at1, *row.AccessToken)
	assert.True(t, row.ExpiresAt.Equal(*again.body.ExpiresAt))
	assert.Equal(t, 2, b.sandbox.Calls(subject), "a report of the stored token: one call")

	st := b.sandbox.Stats()
	assert.Zero(t, st.Rejected, "no invalid_grant: no retired refresh token was ever presented")
	assert.Zero(t, st.FamiliesRevoked)
	assert.True(t, b.sandbox.RefreshTokenValid(*row.RefreshToken), "the stored refresh token is the live one")
	assert.Empty(t, b.archived(t), "nothing failing")
	testenv.Eventually(t, 10*time.Second, "the queues to settle", b.allSettled)
	o := b.outcomes()
	assert.Equal(t, 2, o["refreshed"], "outcomes %v", o)
	assert.Zero(t, o["permanent"]+o["transient"], "outcomes %v", o)

	secrets := []string{"oauth-at-revoked-early-7", at1, *row.AccessToken, rt0, rt1, *row.RefreshToken,
		sandbox.DefaultClientSecret, reportAPIToken}
	r.assertNoSecretsIn(secrets)
	assertNoSecrets(t, b, secrets[:len(secrets)-1])
}

// TestRejectedRefreshReports: the marketplace refuses the credentials
// themselves. Every waiting consumer gets 422 with the reason, after one
// call, and one webhook event goes out, not one per report. A report after
// that, the credentials unchanged, is refused at once, with no call.
func TestRejectedRefreshReports(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	rcv := &hookReceiver{key: []byte("e2e-webhook-secret-report-0123")}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)
	eps, err := webhook.ParseURLs(hook.URL + "/events")
	require.NoError(t, err)
	b.webhooks = worker.Webhooks{
		Endpoints: eps, Secret: rcv.key, Timeout: 5 * time.Second,
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	}
	b.sandbox.SetFaults(sandbox.Faults{Latency: time.Second})
	const id = 8
	user, pass := "report-refused@itc.com", "report-refused-password-8"
	fresh := time.Now().UTC().Add(25 * time.Minute).Truncate(time.Second)
	b.env.Insert(t, testenv.Row{ID: id, InputFields: creds(user, pass), AccessToken: testenv.Str("at-refused-8"), ExpiresAt: &fresh})
	b.startRefresher(t)
	b.startRefresher(t)
	r := &reporter{t: t}
	r.serveAPI(b)
	r.serveAPI(b)

	replies := r.all(50, id, "at-refused-8", "20s")
	figures(t, "50 reports, credentials refused", replies)
	for i, rep := range replies {
		require.Equal(t, http.StatusUnprocessableEntity, rep.status, "report %d: %s", i, rep.raw)
		var refused api.Refused
		require.NoError(t, json.Unmarshal([]byte(rep.raw), &refused))
		assert.Contains(t, refused.Reason, "rejected the credentials")
		assert.Contains(t, refused.Error, "failed permanently")
	}
	assert.Equal(t, 1, b.sandbox.Calls(user), "one call for 50 reports")

	late := r.report(0, id, "at-refused-8", "20s")
	assert.Equal(t, http.StatusUnprocessableEntity, late.status, late.raw)
	assert.Less(t, late.took, time.Second, "refused at once")
	assert.Equal(t, 1, b.sandbox.Calls(user), "no call while the credentials are unchanged")

	deliveriesSettled := func() bool {
		info, err := b.inspector.GetQueueInfo(webhook.Queue(b.env.Queue))
		return err == nil && info.Pending == 0 && info.Active == 0 && info.Retry == 0 && info.Scheduled == 0
	}
	testenv.Eventually(t, 20*time.Second, "the failed event", func() bool { return len(rcv.events(t)) >= 1 })
	testenv.Eventually(t, 20*time.Second, "deliveries to settle", deliveriesSettled)
	evs := rcv.events(t)
	require.Len(t, evs, 1, "one refused refresh, one event")
	assert.Equal(t, webhook.EventFailed, evs[0].Type)
	assert.Equal(t, int64(id), evs[0].Data.ConnectionID)

	row := b.env.Get(t, id)
	assert.Equal(t, "at-refused-8", *row.AccessToken, "a failure never clears a token")
	r.assertNoSecretsIn([]string{"at-refused-8", user, pass, *row.InputFields, reportAPIToken,
		token.Fingerprint([]byte(*row.InputFields), "")})
}

// TestReportWaitEndsPending: while the marketplace fails transiently, a
// waiting report ends in 202 with the task's state and the transient
// reason; once the marketplace heals, the retried refresh answers the next
// report with 200.
func TestReportWaitEndsPending(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	b.sandbox.SetFaults(sandbox.Faults{ErrorRate: 1})
	u, p := seller("pending-10")
	fresh := time.Now().UTC().Add(25 * time.Minute).Truncate(time.Second)
	b.env.Insert(t, testenv.Row{ID: 10, InputFields: creds(u, p), AccessToken: testenv.Str("at-pending-10"), ExpiresAt: &fresh})
	b.startRefresher(t)
	r := &reporter{t: t}
	r.serveAPI(b)

	rep := r.report(0, 10, "at-pending-10", "1500ms")
	require.Equal(t, http.StatusAccepted, rep.status, rep.raw)
	assert.Equal(t, "pending", rep.body.Status)
	assert.Contains(t, []string{"pending", "active", "retry", "scheduled"}, rep.body.TaskState, rep.raw)
	require.NotNil(t, rep.body.LastAttempt, rep.raw)
	// Transient, or deferred once the marketplace's breaker opened.
	assert.Contains(t, []string{"transient", "deferred"}, rep.body.LastAttempt.Outcome, rep.raw)
	assert.GreaterOrEqual(t, rep.took, 1500*time.Millisecond)

	b.sandbox.SetFaults(sandbox.Faults{})
	rep = r.report(0, 10, "at-pending-10", "20s")
	require.Equal(t, http.StatusOK, rep.status, rep.raw)
	assert.NotEqual(t, "at-pending-10", *b.env.Get(t, 10).AccessToken)
	r.assertNoSecretsIn([]string{"at-pending-10", *b.env.Get(t, 10).AccessToken, u, p, reportAPIToken})
}
