package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// A hostile page's request carries the operator's cached basic auth (a
// browser attaches it by itself), so the credentials alone must not let it
// pause a queue, run or delete a task, or queue a refresh. The real
// refresher, on real MariaDB and Redis, refuses such requests with 403 and
// changes nothing; the same requests from the dashboard's own origin work.
func TestCrossOriginRequestsAreRefused(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	sb := httptest.NewServer(sandbox.New().Handler())
	t.Cleanup(sb.Close)
	past := time.Now().UTC().Add(-time.Hour)
	env.Insert(t, testenv.Row{ID: 11, InputFields: testenv.Str(`{"username":"abc@itc.com","password":"abc123"}`), ExpiresAt: &past})
	r := startRefresher(t, env, sb.URL)
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)

	// An archived task in a queue no worker serves, to run and delete.
	parked := env.Queue + "_parked"
	client := asynq.NewClientFromRedisClient(env.Redis)
	_, err := client.Enqueue(asynq.NewTask("parked:test", nil), asynq.Queue(parked), asynq.TaskID("parked-1"))
	require.NoError(t, err)
	require.NoError(t, inspector.ArchiveTask(parked, "parked-1"))
	t.Cleanup(func() { inspector.DeleteQueue(parked, true) })
	// The refresh queue exists in asynq's eyes once it has held a task.
	_, err = client.Enqueue(asynq.NewTask("parked:test", nil), asynq.Queue(env.Queue), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)

	crossSite := func(req *http.Request) {
		basic(req)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
	}
	sameSite := func(req *http.Request) { // a sibling subdomain: another origin still
		basic(req)
		req.Header.Set("Sec-Fetch-Site", "same-site")
	}
	foreignOrigin := func(req *http.Request) { // a browser without Sec-Fetch-Site
		basic(req)
		req.Header.Set("Origin", "https://evil.example")
	}
	sameOrigin := func(req *http.Request) {
		basic(req)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", r.base)
	}
	paused := func(q string) bool {
		info, err := inspector.GetQueueInfo(q)
		require.NoError(t, err)
		return info.Paused
	}
	state := func() asynq.TaskState {
		info, err := inspector.GetTaskInfo(parked, "parked-1")
		require.NoError(t, err)
		return info.State
	}
	api := "/monitoring/api/queues/"

	// Refused, and nothing changed.
	for _, tc := range []struct {
		name   string
		method string
		path   string
		auth   func(*http.Request)
	}{
		{"pause, cross-site", http.MethodPost, api + env.Queue + ":pause", crossSite},
		{"pause, same-site", http.MethodPost, api + env.Queue + ":pause", sameSite},
		{"pause, foreign Origin", http.MethodPost, api + env.Queue + ":pause", foreignOrigin},
		{"run archived, cross-site", http.MethodPost, api + parked + "/archived_tasks/parked-1:run", crossSite},
		{"run all archived, foreign Origin", http.MethodPost, api + parked + "/archived_tasks:run_all", foreignOrigin},
		{"delete archived, cross-site", http.MethodDelete, api + parked + "/archived_tasks/parked-1", crossSite},
		{"delete queue, cross-site", http.MethodDelete, api + parked + "?force=true", crossSite},
	} {
		status, body := r.do(t, tc.method, tc.path, tc.auth)
		assert.Equal(t, http.StatusForbidden, status, "%s: %s", tc.name, body)
	}
	assert.False(t, paused(env.Queue), "a cross-origin request paused the queue")
	assert.Equal(t, asynq.TaskStateArchived, state(), "a cross-origin request ran or deleted the task")

	// The API too, bearer token or not.
	status, body := r.do(t, http.MethodPost, "/v1/connections/11/refresh", func(req *http.Request) {
		bearer(req)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
	})
	assert.Equal(t, http.StatusForbidden, status, body)
	assert.JSONEq(t, `{"error":"cross-origin request refused"}`, body)
	_, err = inspector.GetTaskInfo(task.UrgentQueue(env.Queue), task.ID(11))
	assert.ErrorIs(t, err, asynq.ErrQueueNotFound, "a cross-origin request queued a refresh")

	// Reading stays open to a link from elsewhere (GET is safe).
	status, _ = r.do(t, http.MethodGet, api, crossSite)
	assert.Equal(t, http.StatusOK, status)

	// The dashboard's own page: same-origin pause, resume, run, delete.
	status, body = r.do(t, http.MethodPost, api+env.Queue+":pause", sameOrigin)
	require.Equal(t, http.StatusNoContent, status, body)
	assert.True(t, paused(env.Queue))
	status, body = r.do(t, http.MethodPost, api+env.Queue+":resume", sameOrigin)
	require.Equal(t, http.StatusNoContent, status, body)
	assert.False(t, paused(env.Queue))
	status, body = r.do(t, http.MethodPost, api+parked+"/archived_tasks/parked-1:run", sameOrigin)
	require.Equal(t, http.StatusNoContent, status, body)
	assert.Equal(t, asynq.TaskStatePending, state())
	status, body = r.do(t, http.MethodDelete, api+parked+"/pending_tasks/parked-1", sameOrigin)
	require.Equal(t, http.StatusNoContent, status, body)
	_, err = inspector.GetTaskInfo(parked, "parked-1")
	assert.ErrorIs(t, err, asynq.ErrTaskNotFound)

	// And the API from its own origin, and from a client sending neither
	// header (a service, tokenctl).
	status, body = r.do(t, http.MethodPost, "/v1/connections/11/refresh", func(req *http.Request) {
		bearer(req)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("Origin", r.base)
	})
	assert.Equal(t, http.StatusAccepted, status, body)
	testenv.Eventually(t, 60*time.Second, "connection 11 to be refreshed", func() bool {
		return env.Get(t, 11).AccessToken != nil
	})
	status, body = r.do(t, http.MethodPost, "/v1/connections/11/refresh", bearer)
	assert.Contains(t, []int{http.StatusAccepted, http.StatusConflict}, status, body)
}
