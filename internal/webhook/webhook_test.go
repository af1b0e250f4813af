package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

var testKey = []byte("webhook-test-key-0123456789abcdef")

// verify is a receiver's check as docs/webhooks.md shows it, written from the
// spec, independent of the library the sender signs with.
func verify(key []byte, h http.Header, body []byte) bool {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func TestSignature(t *testing.T) {
	t.Parallel()
	// The Standard Webhooks spec's example (the libraries' shared test
	// vector): whsec_ secret, id, timestamp, payload and signature.
	key, err := webhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	eps, err := webhook.ParseURLs("http://127.0.0.1:1/hook")
	require.NoError(t, err)
	d, err := webhook.NewDeliverer(eps, key, 0, zap.NewNop())
	require.NoError(t, err)
	body := []byte(`{"test": 2432232314}`)
	h, err := d.Headers("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), body)
	require.NoError(t, err)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", h.Get("webhook-signature"))
	assert.Equal(t, "1614265330", h.Get("webhook-timestamp"))
	assert.Equal(t, "msg_p5jXN8AQM9LWM0D4loKWxJek", h.Get("webhook-id"))
	assert.True(t, verify(key, h, body))
	assert.False(t, verify(key, h, []byte(`{"test": 2432232315}`)), "another body")
	assert.False(t, verify(testKey, h, body), "another key")

	// A secret without the prefix is its bytes as given.
	raw, err := webhook.ParseSecret(string(testKey))
	require.NoError(t, err)
	assert.Equal(t, testKey, raw)
	for _, bad := range []string{"short", "whsec_not*base64", "whsec_" + base64.StdEncoding.EncodeToString([]byte("15 bytes only!!"))} {
		_, err := webhook.ParseSecret(bad)
		assert.Error(t, err, bad)
	}
	_, err = webhook.ParseURLs("https://hooks.example.com/a?token=s3cret,ftp://x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
	assert.Contains(t, err.Error(), "entry 2")

	// http:// only to loopback, unless WEBHOOK_ALLOW_INSECURE_HTTP.
	_, err = webhook.ParseURLs("http://127.0.0.1:1/a,http://hooks.example.com/b?token=s3cret")
	require.ErrorIs(t, err, httpurl.ErrInsecureHTTP)
	assert.Contains(t, err.Error(), "entry 2")
	assert.ErrorIs(t, err, httpurl.ErrInsecureHTTP)
	assert.NotContains(t, err.Error(), "WEBHOOK_", "only cmd/ and startup name settings")
	assert.NotContains(t, err.Error(), "s3cret")
	eps, err = webhook.ParseURLsWith("http://127.0.0.1:1/a,http://hooks.example.com/b?token=s3cret", true)
	require.NoError(t, err)
	assert.Len(t, eps, 2)
}

// delivery is one request a receiver got.
type delivery struct {
	header   http.Header
	body     []byte
	verified bool
	status   int
}

// receiver is a real HTTP receiver that checks every signature; it refuses
// the first down requests with 503.
type receiver struct {
	mu   sync.Mutex
	key  []byte
	down int
	got  []delivery
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	d := delivery{header: req.Header.Clone(), body: body, verified: verify(r.key, req.Header, body)}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !d.verified:
		d.status = http.StatusUnauthorized
	case r.down > 0:
		r.down--
		d.status = http.StatusServiceUnavailable
	default:
		d.status = http.StatusNoContent
	}
	r.got = append(r.got, d)
	w.WriteHeader(d.status)
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// accepted returns the events the receiver accepted, in order.
func (r *receiver) accepted(t *testing.T) []webhook.Event {
	t.Helper()
	var out []webhook.Event
	for _, d := range r.deliveries() {
		if d.status != http.StatusNoContent {
			continue
		}
		var ev webhook.Event
		require.NoError(t, json.Unmarshal(d.body, &ev))
		out = append(out, ev)
	}
	return out
}

func startDeliveries(t *testing.T, env *testenv.Env, eps []webhook.Endpoint) {
	t.Helper()
	d, err := webhook.NewDeliverer(eps, testKey, 5*time.Second, zap.NewNop())
	require.NoError(t, err)
	srv := webhook.NewServer(env.Redis, env.Queue, webhook.ServerConfig{
		RetryBase: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, CheckInterval: 50 * time.Millisecond,
		ShutdownTimeout: time.Second,
	}, zap.NewNop())
	require.NoError(t, srv.Start(webhook.Mux(d)))
	t.Cleanup(srv.Shutdown)
}

// TestRetriesUntilTheReceiverIsUp: a receiver that is down for its first
// three requests gets the same event (same id, same body) until it accepts
// it, each attempt signed anew; a second receiver that is up gets it once.
func TestRetriesUntilTheReceiverIsUp(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	flaky := &receiver{key: testKey, down: 3}
	up := &receiver{key: testKey}
	s1, s2 := httptest.NewServer(flaky), httptest.NewServer(up)
	t.Cleanup(s1.Close)
	t.Cleanup(s2.Close)
	eps, err := webhook.ParseURLs(s1.URL + "/hook?token=receiver-url-secret," + s2.URL + "/hook")
	require.NoError(t, err)
	n := webhook.NewNotifier(env.Redis, env.Queue, eps, webhook.NotifierConfig{}, zap.NewNop())
	n.Failed(context.Background(), 7, "16", "ajio", "ajio rejected the credentials (success:false, statusCode 401)")
	startDeliveries(t, env, eps)

	testenv.Eventually(t, 30*time.Second, "the flaky receiver to accept", func() bool { return len(flaky.accepted(t)) == 1 })
	testenv.Eventually(t, 30*time.Second, "the other receiver to accept", func() bool { return len(up.accepted(t)) == 1 })
	got := flaky.deliveries()
	require.Len(t, got, 4, "three refusals, then the accepted one")
	for _, d := range got {
		assert.True(t, d.verified)
		assert.Equal(t, got[0].body, d.body, "a redelivery sends the same body")
		assert.Equal(t, got[0].header.Get("webhook-id"), d.header.Get("webhook-id"))
		assert.Equal(t, "application/json", d.header.Get("Content-Type"))
		ts, err := strconv.ParseInt(d.header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now(), time.Unix(ts, 0), 5*time.Minute, "the spec's tolerance")
	}
	ev := flaky.accepted(t)[0]
	assert.Equal(t, got[0].header.Get("webhook-id"), ev.ID, "the id is in the body and the header")
	assert.True(t, strings.HasPrefix(ev.ID, "msg_"))
	assert.Equal(t, webhook.EventFailed, ev.Type)
	assert.Equal(t, webhook.Data{ConnectionID: 7, IntegrationType: "16", Provider: "ajio",
		Reason: "ajio rejected the credentials (success:false, statusCode 401)"}, ev.Data)
	assert.Equal(t, ev, up.accepted(t)[0])

	// The library a Svix or Standard Webhooks receiver uses agrees.
	lib, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(testKey))
	require.NoError(t, err)
	assert.NoError(t, lib.Verify(got[3].body, got[3].header))

	// The delivered tasks stay visible (completed) for a day; nothing in
	// Redis names the receiver's URL.
	ins := asynq.NewInspectorFromRedisClient(env.Redis)
	testenv.Eventually(t, 10*time.Second, "both deliveries completed", func() bool {
		done, err := ins.ListCompletedTasks(webhook.Queue(env.Queue))
		return err == nil && len(done) == 2
	})
	assert.NotContains(t, env.RedisDump(t), "receiver-url-secret")
}

// TestOneEventPerStateChange: replicas and repeated failures record the
// same state change many times at once; each change queues exactly one
// delivery per endpoint, and a connection that never failed sends nothing
// when refreshed.
func TestOneEventPerStateChange(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	eps, err := webhook.ParseURLs("http://127.0.0.1:1/a,http://127.0.0.1:1/b")
	require.NoError(t, err)
	ctx := context.Background()
	ins := asynq.NewInspectorFromRedisClient(env.Redis)
	queued := func() map[string]int {
		out := map[string]int{}
		tasks, err := ins.ListPendingTasks(webhook.Queue(env.Queue), asynq.PageSize(1000))
		if err != nil {
			return out
		}
		for _, ti := range tasks {
			var p webhook.Payload
			require.NoError(t, json.Unmarshal(ti.Payload, &p))
			var ev webhook.Event
			require.NoError(t, json.Unmarshal(p.Event, &ev))
			out[ev.Type+" "+strconv.FormatInt(ev.Data.ConnectionID, 10)]++
		}
		return out
	}
	// Several replicas, each with its own notifier, all at once.
	replicas := make([]*webhook.Notifier, 4)
	for i := range replicas {
		replicas[i] = webhook.NewNotifier(env.Redis, env.Queue, eps, webhook.NotifierConfig{}, zap.NewNop())
	}
	all := func(fn func(n *webhook.Notifier)) {
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() { defer wg.Done(); fn(replicas[i%len(replicas)]) }()
		}
		wg.Wait()
	}

	all(func(n *webhook.Notifier) { n.Refreshed(ctx, 8, "16", "ajio") })
	assert.Empty(t, queued(), "never failed: nothing recovers")

	all(func(n *webhook.Notifier) { n.Failed(ctx, 7, "16", "ajio", "rejected") })
	assert.Equal(t, map[string]int{"connection.failed 7": 2}, queued(), "one event, one task per endpoint")
	// A day of cooldowns: the same failure again and again.
	for range 5 {
		replicas[0].Failed(ctx, 7, "16", "ajio", "rejected")
	}
	assert.Equal(t, map[string]int{"connection.failed 7": 2}, queued())

	all(func(n *webhook.Notifier) { n.Refreshed(ctx, 7, "16", "ajio") })
	all(func(n *webhook.Notifier) { n.Refreshed(ctx, 7, "16", "ajio") })
	assert.Equal(t, map[string]int{"connection.failed 7": 2, "connection.recovered 7": 2}, queued())

	all(func(n *webhook.Notifier) { n.Failed(ctx, 7, "16", "ajio", "rejected again") })
	assert.Equal(t, map[string]int{"connection.failed 7": 4, "connection.recovered 7": 2}, queued(),
		"failing again is a new change")
	assert.Empty(t, env.Redis.Keys(ctx, webhook.StateKeyPrefix(env.Queue)+"8").Val(), "no record for a connection that never failed")
}

// TestKilledBetweenChangeAndEnqueue: a replica killed after recording the
// change but before queueing its deliveries leaves the record unqueued; the
// next report of the same state queues the same event (same id), not a new
// one.
func TestKilledBetweenChangeAndEnqueue(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	eps, err := webhook.ParseURLs("http://127.0.0.1:1/a")
	require.NoError(t, err)
	ctx := context.Background()
	ev := webhook.Event{ID: "msg_recorded_before_the_kill", Type: webhook.EventFailed, Timestamp: time.Now().UTC().Truncate(time.Second),
		Data: webhook.Data{ConnectionID: 9, IntegrationType: "16", Provider: "ajio", Reason: "rejected"}}
	body, err := json.Marshal(ev)
	require.NoError(t, err)
	require.NoError(t, env.Redis.HSet(ctx, webhook.StateKeyPrefix(env.Queue)+"9",
		"state", "failed", "event", string(body), "id", ev.ID, "queued", "0").Err())

	n := webhook.NewNotifier(env.Redis, env.Queue, eps, webhook.NotifierConfig{}, zap.NewNop())
	n.Failed(ctx, 9, "16", "ajio", "rejected")
	n.Failed(ctx, 9, "16", "ajio", "rejected")
	ins := asynq.NewInspectorFromRedisClient(env.Redis)
	tasks, err := ins.ListPendingTasks(webhook.Queue(env.Queue))
	require.NoError(t, err)
	require.Len(t, tasks, 1)
	assert.Equal(t, webhook.TaskID(ev.ID, eps[0].Key), tasks[0].ID)
	var p webhook.Payload
	require.NoError(t, json.Unmarshal(tasks[0].Payload, &p))
	assert.JSONEq(t, string(body), string(p.Event))
}
