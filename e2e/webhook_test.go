package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// hookReceiver is a real receiver that verifies each signature the way the
// docs/webhooks.md shows, and keeps what it accepted.
type hookReceiver struct {
	mu     sync.Mutex
	key    []byte
	bodies []string
	heads  []http.Header
	bad    int
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(req.Header.Get("webhook-id") + "." + req.Header.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	r.mu.Lock()
	defer r.mu.Unlock()
	if !hmac.Equal([]byte(req.Header.Get("webhook-signature")), []byte(want)) {
		r.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.bodies = append(r.bodies, string(body))
	r.heads = append(r.heads, req.Header.Clone())
	w.WriteHeader(http.StatusNoContent)
}

func (r *hookReceiver) events(t *testing.T) []webhook.Event {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []webhook.Event
	for _, b := range r.bodies {
		var ev webhook.Event
		require.NoError(t, json.Unmarshal([]byte(b), &ev))
		out = append(out, ev)
	}
	return out
}

// TestWebhookOnFailureAndRecovery: the real refresh handler, MariaDB, Redis
// and the sandbox. A connection whose credentials are rejected fails three
// times (cooldowns over) and sends one connection.failed; once the
// marketplace accepts it and an operator runs it again it sends one
// connection.recovered. Neither event, nor anything in Redis, holds a secret.
func TestWebhookOnFailureAndRecovery(t *testing.T) {
	t.Parallel()
	b := setup(t, options{cooldown: time.Millisecond})
	rcv := &hookReceiver{key: []byte("e2e-webhook-secret-0123456789")}
	hook := httptest.NewServer(rcv)
	t.Cleanup(hook.Close)
	eps, err := webhook.ParseURLs(hook.URL + "/events?key=url-held-secret")
	require.NoError(t, err)
	b.webhooks = worker.Webhooks{
		Endpoints: eps, Secret: rcv.key, Timeout: 5 * time.Second,
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
	}

	user, pass := "webhook-seller@itc.com", "webhook-password-51"
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 51, InputFields: creds(user, pass), AccessToken: testenv.Str("at-webhook-51"), ExpiresAt: &expired})
	b.startRefresher(t)

	deliveriesSettled := func() bool {
		info, err := b.inspector.GetQueueInfo(webhook.Queue(b.env.Queue))
		return err == nil && info.Pending == 0 && info.Active == 0 && info.Retry == 0 && info.Scheduled == 0
	}
	for i := 1; i <= 3; i++ {
		b.scanOnce(t) // the cooldown (1ms) is over: the archived failure is tried again
		testenv.Eventually(t, 20*time.Second, "failure to be archived again", func() bool {
			return b.sandbox.Calls(user) == i && len(b.archived(t)) == 1
		})
	}
	testenv.Eventually(t, 20*time.Second, "the failed event", func() bool { return len(rcv.events(t)) == 1 })
	testenv.Eventually(t, 20*time.Second, "deliveries to settle", deliveriesSettled)
	evs := rcv.events(t)
	require.Len(t, evs, 1, "three failures, one state change, one event")
	assert.Equal(t, webhook.EventFailed, evs[0].Type)
	assert.Equal(t, int64(51), evs[0].Data.ConnectionID)
	assert.Equal(t, "16", evs[0].Data.IntegrationType)
	assert.Equal(t, "ajio", evs[0].Data.Provider)
	assert.Contains(t, evs[0].Data.Reason, "rejected the credentials")
	assert.Equal(t, evs[0].ID, rcv.heads[0].Get("webhook-id"))

	b.sandbox.AddSeller(user, pass)
	require.NoError(t, b.inspector.RunTask(b.env.Queue, task.ID(51)))
	testenv.Eventually(t, 20*time.Second, "the recovered event", func() bool { return len(rcv.events(t)) == 2 })
	testenv.Eventually(t, 20*time.Second, "deliveries to settle", deliveriesSettled)
	evs = rcv.events(t)
	require.Len(t, evs, 2)
	assert.Equal(t, webhook.EventRecovered, evs[1].Type)
	assert.Equal(t, int64(51), evs[1].Data.ConnectionID)
	assert.NotEqual(t, evs[0].ID, evs[1].ID)
	assert.Zero(t, rcv.bad, "every delivery was signed right")

	row := b.env.Get(t, 51)
	secrets := []string{pass, user, "at-webhook-51", *row.AccessToken, *row.InputFields, "url-held-secret", string(rcv.key),
		token.Fingerprint([]byte(*row.InputFields), "")}
	rcv.mu.Lock()
	seen := strings.Join(rcv.bodies, "\n")
	for _, h := range rcv.heads {
		seen += "\n" + strings.Join(append(h.Values("webhook-id"), h.Values("webhook-timestamp")...), " ")
	}
	rcv.mu.Unlock()
	dump := b.env.RedisDump(t)
	dump += strings.Join(b.env.Redis.Keys(t.Context(), webhook.StateKeyPrefix(b.env.Queue)+"*").Val(), " ")
	for _, s := range secrets {
		assert.NotContains(t, seen, s, "an event holds a secret")
		assert.NotContains(t, dump, s, "Redis holds a secret")
		assert.NotContains(t, b.logs.String(), s, "the logs hold a secret")
	}
}
