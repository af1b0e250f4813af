package dashboard_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/dashboard"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

func TestFormatPayload(t *testing.T) {
	t.Parallel()
	exp := time.Date(2022, 8, 17, 16, 25, 8, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		typ     string
		payload string
		want    string
	}{
		{"due with expiry", task.TypeRefresh, `{"connection_id":11,"integration_type":"16","due_expiry":"2022-08-17T16:25:08Z"}`,
			"connection 11 · type 16 · due expiry " + exp.Format(time.RFC3339)},
		{"never generated", task.TypeRefresh, `{"connection_id":12,"integration_type":"16","due_expiry":null}`,
			"connection 12 · type 16 · due expiry never (no token yet)"},
		{"on demand", task.TypeRefresh, `{"connection_id":13,"integration_type":"42","due_expiry":null,"forced":true}`,
			"connection 13 · type 42 · due expiry never (no token yet) · on demand"},
		{"extra fields are never echoed", task.TypeRefresh, `{"connection_id":14,"integration_type":"16","password":"hunter2"}`,
			"connection 14 · type 16 · due expiry never (no token yet)"},
		{"scheduled refresh", task.TypeWake, `{"connection_id":16,"integration_type":"42","due_expiry":"2022-08-17T16:25:08Z"}`,
			"connection 16 · type 42 · due expiry " + exp.Format(time.RFC3339) + " · scheduled refresh"},
		{"malformed", task.TypeRefresh, `{"password":"hunter2"`, "malformed refresh payload (21 bytes, not shown)"},
		{"webhook delivery", "webhook:deliver",
			`{"endpoint":"0a1b2c3d4e5f","event":{"id":"msg_x","type":"connection.failed","data":{"connection_id":15,"reason":"r"},"password":"hunter2"}}`,
			"connection.failed · connection 15 · event msg_x · endpoint 0a1b2c3d4e5f"},
		{"another application's task", "email:send", `{"password":"hunter2"}`, `22-byte payload of task type "email:send" (not shown)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := dashboard.FormatPayload(tc.typ, []byte(tc.payload))
			assert.Equal(t, tc.want, got)
			assert.NotContains(t, got, "hunter2")
		})
	}
}

func TestFormatResult(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f := task.Failure{Reason: "ajio rejected the credentials (success:false)", Credentials: "sha256:abcdef", At: at}
	got := dashboard.FormatResult(task.TypeRefresh, f.Marshal())
	assert.Equal(t, "failed: ajio rejected the credentials (success:false) (at 2026-01-02T03:04:05Z)", got)
	assert.NotContains(t, got, "abcdef", "the fingerprint stays out of sight")
	for _, record := range []string{
		string(task.Record(token.Permanent("ajio rejected the credentials (success:false)"), at).Marshal()),
		`{"reason":"permanent: ajio rejected the credentials (success:false)","at":"2026-01-02T03:04:05Z"}`, // before records held a class
	} {
		assert.Equal(t, "failed: ajio rejected the credentials (success:false) (at 2026-01-02T03:04:05Z)", dashboard.FormatResult(task.TypeRefresh, []byte(record)))
	}

	assert.Equal(t, "", dashboard.FormatResult("", nil))
	assert.Equal(t, "22-byte result (not shown)", dashboard.FormatResult("", []byte(`{"token":"secret-tok"}`)))
}

// bundle is a dashboard on real Redis with one archived refresh that failed
// permanently, the way the refresher records it.
type bundle struct {
	env   *testenv.Env
	srv   *httptest.Server
	queue string
	clock *clock // the failed-login throttle's
}

// clock is a settable clock for the failed-login throttle.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const (
	user     = "ops"
	password = "correct horse battery staple"
	reason   = "ajio rejected the credentials (success:false)"
)

func setup(t *testing.T, readOnly bool) *bundle {
	t.Helper()
	env := testenv.New(t)
	d, err := dashboard.New(dashboard.Config{User: user, Password: password, ReadOnly: readOnly,
		Redis: asynq.RedisClientOpt{Addr: testenv.RedisAddr()}})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	clk := &clock{t: time.Now()}
	dashboard.SetClock(d, clk.now)
	mux := http.NewServeMux()
	mux.Handle(dashboard.Path, d)
	mux.Handle(dashboard.Path+"/", d)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := &bundle{env: env, srv: srv, queue: env.Queue, clock: clk}
	b.archiveFailure(t)
	return b
}

func (b *bundle) archiveFailure(t *testing.T) {
	t.Helper()
	q := task.NewQueue(b.env.Redis, b.queue, time.Minute)
	exp := time.Now().Add(-time.Hour)
	queued, err := q.Enqueue(context.Background(), task.Payload{ConnectionID: 18, IntegrationType: "16", DueExpiry: &exp})
	require.NoError(t, err)
	require.True(t, queued)

	srv := asynq.NewServerFromRedisClient(b.env.Redis, asynq.Config{
		Concurrency: 1, Queues: map[string]int{b.queue: 1}, TaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeRefresh, func(_ context.Context, tk *asynq.Task) error {
		f := task.Failure{Reason: reason, Credentials: "sha256:fp-not-for-display", At: time.Now().UTC()}
		if _, err := tk.ResultWriter().Write(f.Marshal()); err != nil {
			return err
		}
		return fmt.Errorf("permanent: %s: %w", reason, asynq.SkipRetry)
	})
	require.NoError(t, srv.Start(mux))
	defer srv.Shutdown()
	inspector := asynq.NewInspectorFromRedisClient(b.env.Redis)
	testenv.Eventually(t, 20*time.Second, "the refresh to be archived", func() bool {
		info, err := inspector.GetTaskInfo(b.queue, task.ID(18))
		return err == nil && info.State == asynq.TaskStateArchived
	})
}

func (b *bundle) do(t *testing.T, method, path string, auth bool) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, nil)
	require.NoError(t, err)
	if auth {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestDashboardNeedsBasicAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, tc := range []struct {
		name     string
		user, pw string
		set      bool
	}{
		{"no credentials", "", "", false},
		{"wrong password", user, "wrong", true},
		{"wrong user", "admin", password, true},
		{"password as prefix", user, password[:5], true},
	} {
		for _, path := range []string{"/monitoring", "/monitoring/", "/monitoring/api/queues", "/monitoring/api/queues/" + b.queue + "/archived_tasks"} {
			b.clock.advance(dashboard.LockoutPeriod + dashboard.FailureWindow) // no lockout here (TestFailedLoginsAreThrottled)
			req, err := http.NewRequest(http.MethodGet, b.srv.URL+path, nil)
			require.NoError(t, err)
			if tc.set {
				req.SetBasicAuth(tc.user, tc.pw)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", tc.name, path)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Basic ", tc.name)
			assert.NotContains(t, string(body), "connection 18", tc.name)
		}
	}

	status, body := b.do(t, http.MethodGet, "/monitoring/", true)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `<script src="/monitoring/static/js/main.`, "asynqmon's page, rooted at /monitoring")
}

func TestDashboardShowsTheFailureAndNoSecret(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	status, body := b.do(t, http.MethodGet, "/monitoring/api/queues/"+b.queue+"/archived_tasks", true)
	require.Equal(t, http.StatusOK, status, body)
	var list struct {
		Tasks []struct {
			ID      string `json:"id"`
			Payload string `json:"payload"`
			Error   string `json:"error_message"`
		} `json:"tasks"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &list))
	require.Len(t, list.Tasks, 1)
	assert.Equal(t, "refresh:18", list.Tasks[0].ID)
	assert.True(t, strings.HasPrefix(list.Tasks[0].Payload, "connection 18 · type 16 · due expiry "), list.Tasks[0].Payload)
	assert.Contains(t, list.Tasks[0].Error, reason)

	status, body = b.do(t, http.MethodGet, "/monitoring/api/queues/"+b.queue+"/tasks/refresh:18", true)
	require.Equal(t, http.StatusOK, status, body)
	var detail struct {
		Result string `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &detail))
	assert.True(t, strings.HasPrefix(detail.Result, "failed: "+reason), detail.Result)
	assert.NotContains(t, body, "fp-not-for-display")
}

func TestReadOnlyDashboardRefusesChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	path := "/monitoring/api/queues/" + b.queue + "/archived_tasks/refresh:18"
	status, _ := b.do(t, http.MethodDelete, path, true)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = b.do(t, http.MethodPost, path+":run", true)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _ = b.do(t, http.MethodGet, "/monitoring/api/queues/"+b.queue+"/tasks/refresh:18", true)
	assert.Equal(t, http.StatusOK, status, "reading still works")

	w := setup(t, false)
	status, _ = w.do(t, http.MethodPost, "/monitoring/api/queues/"+w.queue+"/archived_tasks/refresh:18:run", true)
	assert.Equal(t, http.StatusNoContent, status, "a writable dashboard runs an archived task again")
}

func TestNewRefusesMissingSettings(t *testing.T) {
	t.Parallel()
	_, err := dashboard.New(dashboard.Config{User: "u", Redis: asynq.RedisClientOpt{Addr: "127.0.0.1:1"}})
	assert.Error(t, err)
	_, err = dashboard.New(dashboard.Config{User: "u", Password: "p"})
	assert.Error(t, err)
}

// TestFailedLoginsAreThrottled: after 5 wrong passwords from one client
// within a minute, every request from it, the right password included, is
// answered 429 with Retry-After for a minute; then it may log in again.
// Requests without credentials (the browser's first one) do not count.
func TestFailedLoginsAreThrottled(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	try := func(pw string, set bool) *http.Response {
		t.Helper()
		// asynqmon's page, not its queue API: the API lists every queue
		// of the shared Redis, which other tests create and drop meanwhile.
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/monitoring/", nil)
		require.NoError(t, err)
		if set {
			req.SetBasicAuth(user, pw)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for range 10 {
		assert.Equal(t, http.StatusUnauthorized, try("", false).StatusCode, "no credentials: not a failure")
	}
	// Failures spread over more than a minute never lock out.
	for range 8 {
		assert.Equal(t, http.StatusUnauthorized, try("wrong", true).StatusCode)
		b.clock.advance(20 * time.Second)
	}
	b.clock.advance(time.Minute)
	for i := range 4 {
		assert.Equal(t, http.StatusUnauthorized, try("wrong", true).StatusCode, "failure %d", i+1)
		b.clock.advance(5 * time.Second)
	}
	assert.Equal(t, http.StatusOK, try(password, true).StatusCode, "4 failures: still allowed in")
	assert.Equal(t, http.StatusUnauthorized, try("wrong", true).StatusCode, "the 5th failure within a minute")

	resp := try(password, true)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "locked out, even with the right password")
	assert.Equal(t, "60", resp.Header.Get("Retry-After"))
	b.clock.advance(45 * time.Second)
	resp = try("wrong", true)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "15", resp.Header.Get("Retry-After"), "what is left of the minute")
	b.clock.advance(15 * time.Second)
	assert.Equal(t, http.StatusOK, try(password, true).StatusCode, "a minute later")
	assert.Equal(t, http.StatusUnauthorized, try("wrong", true).StatusCode, "counting starts afresh")
}

// TestDashboardPagesCannotBeFramed: asynqmon's page (and every other answer
// of the dashboard, refusals included) forbids framing and sniffing.
func TestDashboardPagesCannotBeFramed(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	for _, auth := range []bool{true, false} {
		req, err := http.NewRequest(http.MethodGet, b.srv.URL+"/monitoring/", nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if auth {
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Contains(t, string(body), "<html")
		}
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), "auth %v", auth)
		assert.Equal(t, "frame-ancestors 'none'", resp.Header.Get("Content-Security-Policy"), "auth %v", auth)
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), "auth %v", auth)
	}
}
