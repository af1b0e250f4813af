package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

const apiToken = "test-token-0123456789abcdef"

type fakeStore struct {
	FindActiveFunc func(ctx context.Context, id int64, types []string) (token.DueConnection, error)
}

func (f fakeStore) FindActive(ctx context.Context, id int64, types []string) (token.DueConnection, error) {
	return f.FindActiveFunc(ctx, id, types)
}

func (fakeStore) Describe(context.Context, int64, []string) (token.Described, error) {
	return token.Described{}, errors.New("not in this fake")
}

func (fakeStore) DuePage(context.Context, string, time.Time, int64) ([]token.DueConnection, *int64, error) {
	return nil, nil, errors.New("not in this fake")
}

func (fakeStore) CredentialsChanged(context.Context, map[int64]string) (map[int64]bool, error) {
	return nil, errors.New("not in this fake")
}

func (fakeStore) HoldsToken(context.Context, int64, string) (bool, *time.Time, error) {
	return false, nil, errors.New("not in this fake")
}

type fakeQueue struct {
	EnqueueForcedFunc func(ctx context.Context, p task.Payload) (bool, error)
}

func (f fakeQueue) EnqueueForced(ctx context.Context, p task.Payload) (bool, error) {
	return f.EnqueueForcedFunc(ctx, p)
}

func (fakeQueue) EnsureForced(context.Context, task.Payload, bool) (string, error) {
	return "", errors.New("not in this fake")
}

func (fakeQueue) Inspect(context.Context, int64) ([]task.Status, error) {
	return nil, errors.New("not in this fake")
}

func (fakeQueue) ListArchived() (map[int64]task.Archived, error) {
	return nil, errors.New("not in this fake")
}

type fakeCensus struct {
	TakeFunc func(ctx context.Context) ([]census.Count, error)
}

func (f fakeCensus) Take(ctx context.Context) ([]census.Count, error) { return f.TakeFunc(ctx) }

func call(t *testing.T, h http.Handler, method, path, auth string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	resp := w.Result()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestAuth(t *testing.T) {
	t.Parallel()
	a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}},
		fakeStore{func(context.Context, int64, []string) (token.DueConnection, error) {
			t.Error("the store must not be read without a valid token")
			return token.DueConnection{}, token.ErrNotFound
		}},
		fakeQueue{func(context.Context, task.Payload) (bool, error) {
			t.Error("nothing may be queued without a valid token")
			return false, nil
		}},
		fakeCensus{func(context.Context) ([]census.Count, error) { return nil, nil }}, zap.NewNop())
	require.NoError(t, err)
	for name, auth := range map[string]string{
		"none":             "",
		"wrong token":      "Bearer wrong-token-0123456789abcdef",
		"prefix":           "Bearer " + apiToken[:10],
		"longer":           "Bearer " + apiToken + "x",
		"basic scheme":     "Basic " + apiToken,
		"token, no scheme": apiToken,
	} {
		for _, r := range [][2]string{{http.MethodPost, "/v1/connections/11/refresh"}, {http.MethodGet, "/v1/connections/summary"}} {
			resp, body := call(t, a, r[0], r[1], auth)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s: %s", name, r[1])
			assert.Equal(t, `Bearer realm="token-refresher"`, resp.Header.Get("WWW-Authenticate"))
			assert.NotContains(t, body, apiToken[:10])
		}
	}
	resp, _ := call(t, a, http.MethodGet, "/v1/connections/summary", "bearer "+apiToken)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the scheme is case-insensitive")

	_, err = api.New(api.Config{}, nil, nil, nil, zap.NewNop())
	assert.Error(t, err, "no token, no API")
}

func TestRefreshAnswers(t *testing.T) {
	t.Parallel()
	exp := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	found := func(_ context.Context, id int64, types []string) (token.DueConnection, error) {
		if id != 11 {
			return token.DueConnection{}, token.ErrNotFound
		}
		return token.DueConnection{ID: 11, IntegrationType: "16", ExpiresAt: &exp}, nil
	}
	for _, tc := range []struct {
		name    string
		path    string
		find    func(context.Context, int64, []string) (token.DueConnection, error)
		enqueue func(context.Context, task.Payload) (bool, error)
		status  int
		body    string
	}{
		{"queued", "/v1/connections/11/refresh", found,
			func(_ context.Context, p task.Payload) (bool, error) {
				if p.ConnectionID != 11 || p.IntegrationType != "16" || p.DueExpiry == nil || !p.DueExpiry.Equal(exp) {
					return false, errors.New("unexpected payload")
				}
				return true, nil
			},
			http.StatusAccepted, `{"connection_id":11,"integration_type":"16","task_id":"refresh:11","status":"queued"}`},
		{"already queued", "/v1/connections/11/refresh", found,
			func(context.Context, task.Payload) (bool, error) { return false, nil },
			http.StatusConflict, `{"error":"an on-demand refresh of connection 11 is already queued or running; it will answer this request"}`},
		{"unknown", "/v1/connections/12/refresh", found, nil,
			http.StatusNotFound, `{"error":"connection 12 is unknown or not active"}`},
		{"not a number", "/v1/connections/abc/refresh", found, nil,
			http.StatusBadRequest, `{"error":"the connection id must be a positive whole number"}`},
		{"negative", "/v1/connections/-1/refresh", found, nil,
			http.StatusBadRequest, `{"error":"the connection id must be a positive whole number"}`},
		{"database down", "/v1/connections/11/refresh",
			func(context.Context, int64, []string) (token.DueConnection, error) {
				return token.DueConnection{}, errors.New("dial tcp 10.0.0.1:3306: user:s3cret-dsn-password refused")
			}, nil,
			http.StatusServiceUnavailable, `{"error":"the database is not answering; try again"}`},
		{"redis down", "/v1/connections/11/refresh", found,
			func(context.Context, task.Payload) (bool, error) {
				return false, errors.New("redis: s3cret-redis-password")
			},
			http.StatusServiceUnavailable, `{"error":"the queue is not answering; try again"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			enqueue := tc.enqueue
			if enqueue == nil {
				enqueue = func(context.Context, task.Payload) (bool, error) {
					t.Error("nothing may be queued")
					return false, nil
				}
			}
			a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}},
				fakeStore{tc.find}, fakeQueue{enqueue}, nil, zap.NewNop())
			require.NoError(t, err)
			resp, body := call(t, a, http.MethodPost, tc.path, "Bearer "+apiToken)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.JSONEq(t, tc.body, body)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			assert.NotContains(t, body, "s3cret")
		})
	}
}

func TestSummaryWhenTheCensusFails(t *testing.T) {
	t.Parallel()
	partial := []census.Count{{IntegrationType: "16", Provider: "ajio", Active: 2, Fresh: 2}}
	for _, tc := range []struct {
		name   string
		counts []census.Count
		err    error
		status int
		inc    bool
	}{
		{"complete", partial, nil, http.StatusOK, false},
		{"one type failed", partial, errors.New("census of integration type 42: boom"), http.StatusOK, true},
		{"all failed", nil, errors.New("redis: s3cret"), http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, err := api.New(api.Config{Token: apiToken}, nil, nil,
				fakeCensus{func(context.Context) ([]census.Count, error) { return tc.counts, tc.err }}, zap.NewNop())
			require.NoError(t, err)
			resp, body := call(t, a, http.MethodGet, "/v1/connections/summary", "Bearer "+apiToken)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.NotContains(t, body, "s3cret")
			if tc.status != http.StatusOK {
				return
			}
			var s api.Summary
			require.NoError(t, json.Unmarshal([]byte(body), &s))
			assert.Equal(t, tc.counts, s.Providers)
			assert.Equal(t, tc.inc, s.Incomplete)
		})
	}
}

// TestOnDemandRefreshOnRealStores runs the API on the real MariaDB store and
// the real asynq queues, with no worker, so queued tasks stay queued.
func TestOnDemandRefreshOnRealStores(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	queue := task.NewQueue(env.Redis, env.Queue, time.Minute)
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)

	now := time.Now().UTC().Truncate(time.Second)
	later, soon, past := now.Add(time.Hour), now.Add(5*time.Minute), now.Add(-time.Hour)
	secret := `{"username":"seller@itc.com","password":"pw-do-not-show"}`
	env.Insert(t,
		testenv.Row{ID: 11, InputFields: &secret, AccessToken: testenv.Str("at-do-not-show"), RefreshToken: testenv.Str("rt-do-not-show"), ExpiresAt: &later},
		testenv.Row{ID: 12, InputFields: &secret, ExpiresAt: &soon},
		testenv.Row{ID: 13, InputFields: &secret, ExpiresAt: &past},
		testenv.Row{ID: 14, InputFields: &secret, IsActive: "inactive"},
		testenv.Row{ID: 15, InputFields: &secret, Status: "1"},
		testenv.Row{ID: 16, InputFields: &secret, IntegrationType: "99"},
		testenv.Row{ID: 17, InputFields: &secret, ExpiresAt: &past},
	)
	targets := []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}}
	a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}},
		store, queue, census.New(store, queue, targets), zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)

	post := func(id string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/connections/"+id+"/refresh", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, s := range []string{"do-not-show", "seller@itc.com", apiToken} {
			require.NotContains(t, string(body), s)
		}
		return resp.StatusCode, string(body)
	}

	status, body := post("11")
	assert.Equal(t, http.StatusAccepted, status, body)
	info, err := inspector.GetTaskInfo(task.UrgentQueue(env.Queue), task.ID(11))
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, info.State)
	p, err := task.Parse(asynq.NewTask(info.Type, info.Payload))
	require.NoError(t, err)
	assert.True(t, p.Forced, "a fresh token is refreshed too: the caller just got a 401")
	assert.Equal(t, "16", p.IntegrationType)
	require.NotNil(t, p.DueExpiry)
	assert.True(t, later.Equal(*p.DueExpiry))
	assert.NotContains(t, string(info.Payload), "do-not-show")

	status, _ = post("11")
	assert.Equal(t, http.StatusConflict, status, "already queued on the urgent queue")

	// The scanner already queued connection 12: its task makes no call if
	// 12 is not due, so on-demand is queued beside it, and the connection's
	// lease lets only one of the two call.
	queued, err := queue.Enqueue(context.Background(), task.Payload{ConnectionID: 12, IntegrationType: "16"})
	require.NoError(t, err)
	require.True(t, queued)
	status, _ = post("12")
	assert.Equal(t, http.StatusAccepted, status, "a scan's task does not answer an on-demand request")
	status, _ = post("12")
	assert.Equal(t, http.StatusConflict, status, "an on-demand refresh is already queued")

	for _, id := range []string{"14", "15", "16", "404"} {
		status, _ = post(id)
		assert.Equal(t, http.StatusNotFound, status, "connection %s", id)
	}

	// A permanently failed refresh of 13 is replaced by the on-demand one.
	queued, err = queue.Enqueue(context.Background(), task.Payload{ConnectionID: 13, IntegrationType: "16"})
	require.NoError(t, err)
	require.True(t, queued)
	require.NoError(t, inspector.ArchiveTask(env.Queue, task.ID(13)))
	status, body = post("13")
	assert.Equal(t, http.StatusAccepted, status, body)

	// 17 failed for good too, and stays failing.
	queued, err = queue.Enqueue(context.Background(), task.Payload{ConnectionID: 17, IntegrationType: "16"})
	require.NoError(t, err)
	require.True(t, queued)
	require.NoError(t, inspector.ArchiveTask(env.Queue, task.ID(17)))

	req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/connections/summary", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.False(t, strings.Contains(string(raw), "do-not-show"))
	var s api.Summary
	require.NoError(t, json.Unmarshal(raw, &s))
	assert.False(t, s.Incomplete)
	assert.Equal(t, []census.Count{{
		IntegrationType: "16", Provider: "ajio", Active: 4, Fresh: 1, Due: 1, Expired: 2, Failing: 1, ExpiredFailing: 1,
	}}, s.Providers)
}

// TestErrorsAreJSON: every /v1 answer is JSON, a wrong path or method and a
// bad report included, and a bad value is named.
func TestErrorsAreJSON(t *testing.T) {
	t.Parallel()
	a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}},
		fakeStore{func(context.Context, int64, []string) (token.DueConnection, error) {
			return token.DueConnection{}, errors.New("no read expected")
		}},
		fakeQueue{func(context.Context, task.Payload) (bool, error) { return false, errors.New("no enqueue expected") }},
		nil, zap.NewNop())
	require.NoError(t, err)
	for _, tc := range []struct {
		method, path, body string
		status             int
		names              string
		allow              string
	}{
		{http.MethodGet, "/v1/nothing", "", http.StatusNotFound, "/v1/nothing", ""},
		{http.MethodGet, "/v1/connections/11/refresh/extra", "", http.StatusNotFound, "no such API path", ""},
		{http.MethodGet, "/v1/connections/11/refresh", "", http.StatusMethodNotAllowed, "POST", "POST"},
		{http.MethodDelete, "/v1/connections/11", "", http.StatusMethodNotAllowed, "GET", "GET, HEAD"},
		{http.MethodPost, "/v1/connections/summary", "", http.StatusMethodNotAllowed, "GET", "GET, HEAD"},
		{http.MethodPut, "/v1/connections", "", http.StatusMethodNotAllowed, "GET", "GET, HEAD"},
		{http.MethodPost, "/v1/connections/11/refresh?wait=abc", `{"rejected_token_sha256":"` + strings.Repeat("a", 64) + `"}`, http.StatusBadRequest, "wait", ""},
		{http.MethodPost, "/v1/connections/11/refresh?wait=61s", `{"rejected_token_sha256":"` + strings.Repeat("a", 64) + `"}`, http.StatusBadRequest, "wait", ""},
		{http.MethodPost, "/v1/connections/11/refresh?wait=0s", `{"rejected_token_sha256":"` + strings.Repeat("a", 64) + `"}`, http.StatusBadRequest, "wait", ""},
		{http.MethodPost, "/v1/connections/11/refresh?wait=5s", "", http.StatusBadRequest, "rejected_token_sha256", ""},
		{http.MethodPost, "/v1/connections/11/refresh", `{"rejected_token_sha256":"abc"}`, http.StatusBadRequest, "rejected_token_sha256", ""},
		{http.MethodPost, "/v1/connections/11/refresh", `{"rejected_token_sha256":"` + strings.Repeat("g", 64) + `"}`, http.StatusBadRequest, "rejected_token_sha256", ""},
		{http.MethodPost, "/v1/connections/11/refresh", `{}`, http.StatusBadRequest, "rejected_token_sha256", ""},
		{http.MethodPost, "/v1/connections/11/refresh", `{"access_token":"at-do-not-echo"}`, http.StatusBadRequest, "rejected_token_sha256", ""},
		{http.MethodPost, "/v1/connections/11/refresh", `not json`, http.StatusBadRequest, "rejected_token_sha256", ""},
	} {
		req := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		w := httptest.NewRecorder()
		a.ServeHTTP(w, req)
		name := tc.method + " " + tc.path + " " + tc.body
		assert.Equal(t, tc.status, w.Code, name)
		assert.Equal(t, "application/json", w.Header().Get("Content-Type"), name)
		var e struct{ Error string }
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), name)
		assert.Contains(t, e.Error, tc.names, name)
		assert.NotContains(t, w.Body.String(), "at-do-not-echo", name)
		if tc.allow != "" {
			assert.Equal(t, tc.allow, w.Header().Get("Allow"), name)
		}
	}
}

// TestReportOnRealStores: a report of a token the row no longer holds is
// answered at once with no task; reports of the stored token join one
// forced task; with no worker, a wait ends in 202 with the task's state; a
// permanent failure on record answers 422 at once.
func TestReportOnRealStores(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	queue := task.NewQueue(env.Redis, env.Queue, time.Minute)
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)
	later := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	env.Insert(t, testenv.Row{ID: 11, InputFields: testenv.Str(`{}`), AccessToken: testenv.Str("at-11-do-not-show"), ExpiresAt: &later})
	a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}}, store, queue, nil, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)

	report := func(tok, query string) (int, api.Reported, string) {
		sum := sha256.Sum256([]byte(tok))
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/connections/11/refresh"+query,
			strings.NewReader(`{"rejected_token_sha256":"`+hex.EncodeToString(sum[:])+`"}`))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.NotContains(t, string(body), "do-not-show")
		require.NotContains(t, string(body), hex.EncodeToString(sum[:]), "the answer does not echo the fingerprint")
		var r api.Reported
		require.NoError(t, json.Unmarshal(body, &r))
		return resp.StatusCode, r, string(body)
	}

	status, r, body := report("at-11-older", "?wait=5s")
	assert.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "replaced", r.Status)
	require.NotNil(t, r.ExpiresAt)
	assert.True(t, later.Equal(*r.ExpiresAt))
	assert.InDelta(t, 3600, *r.ExpiresInSeconds, 60)
	_, err = inspector.GetTaskInfo(task.UrgentQueue(env.Queue), task.ID(11))
	assert.Error(t, err, "a replaced token queues nothing")

	status, r, body = report("at-11-do-not-show", "")
	assert.Equal(t, http.StatusAccepted, status, body)
	assert.Equal(t, "queued", r.Status)
	assert.Equal(t, task.ID(11), r.TaskID)
	status, r, body = report("at-11-do-not-show", "")
	assert.Equal(t, http.StatusAccepted, status, body)
	assert.Equal(t, "joined", r.Status, "a second report joins the first, no 409")

	start := time.Now()
	status, r, body = report("at-11-do-not-show", "?wait=700ms")
	assert.Equal(t, http.StatusAccepted, status, body)
	assert.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond)
	assert.Equal(t, "pending", r.Status)
	assert.Equal(t, "pending", r.TaskState, "no worker runs here")

	// A permanent failure on record, credentials unchanged: 422 at once.
	require.NoError(t, inspector.ArchiveTask(task.UrgentQueue(env.Queue), task.ID(11)))
	status, _, body = report("at-11-do-not-show", "?wait=5s")
	assert.Equal(t, http.StatusUnprocessableEntity, status, body)
	var refused api.Refused
	require.NoError(t, json.Unmarshal([]byte(body), &refused))
	assert.Contains(t, refused.Error, "failed permanently")
	assert.NotEmpty(t, refused.Reason)
	info, err := inspector.GetTaskInfo(task.UrgentQueue(env.Queue), task.ID(11))
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStateArchived, info.State, "the failure stands: no call for a report")

	// Plain refresh (no body) still counts as an operator's retry.
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/connections/11/refresh", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode)
}
