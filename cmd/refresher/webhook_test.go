package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// TestWebhooksAndConnectionView: the refresher binary's run() with
// WEBHOOK_URLS set sends a signed connection.failed for a rejected
// connection, and its API shows the connection failing with its reason.
func TestWebhooksAndConnectionView(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	sb := httptest.NewServer(sandbox.New().Handler())
	t.Cleanup(sb.Close)
	key := []byte("run-webhook-secret-0123456789")
	var mu sync.Mutex
	var got []webhook.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "." + string(body)))
		if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev webhook.Event
		if json.Unmarshal(body, &ev) == nil {
			mu.Lock()
			got = append(got, ev)
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)

	expired := time.Now().UTC().Add(-time.Hour)
	fields := `{"username":"` + rejectedUser + `","password":"` + rejectedPass + `"}`
	env.Insert(t, testenv.Row{ID: 61, InputFields: &fields, AccessToken: testenv.Str(storedToken), ExpiresAt: &expired})
	r := startRefresher(t, env, sb.URL, map[string]string{
		"WEBHOOK_URLS": hook.URL + "/events", "WEBHOOK_SECRET": string(key),
	})

	status, body := r.do(t, http.MethodPost, "/v1/connections/61/refresh", bearer)
	require.Equal(t, http.StatusAccepted, status, body)
	testenv.Eventually(t, 60*time.Second, "the connection.failed event", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == 1
	})
	mu.Lock()
	ev := got[0]
	mu.Unlock()
	assert.Equal(t, webhook.EventFailed, ev.Type)
	assert.Equal(t, int64(61), ev.Data.ConnectionID)
	assert.Equal(t, "ajio", ev.Data.Provider)

	status, body = r.do(t, http.MethodGet, "/v1/connections/61", bearer)
	require.Equal(t, http.StatusOK, status, body)
	assertNoSecret(t, "the connection view", body)
	var v api.Connection
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	assert.Equal(t, token.StateFailing, v.State)
	assert.Equal(t, "ajio", v.Provider)
	require.NotNil(t, v.LastAttempt)
	assert.Equal(t, ev.Data.Reason, v.LastAttempt.Reason, "the event and the view give the same reason")
	status, body = r.do(t, http.MethodGet, "/v1/connections?state=failing", bearer)
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"connection_id":61`)
	assertNoSecret(t, "the list", body)
	assertNoSecret(t, "the logs", r.stderr.String())
}
