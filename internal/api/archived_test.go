package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestArchivedFailuresOfEveryFormRead: a permanent failure archived in
// Redis reads back through the API with its class and reason whatever form
// it was written in: the record of today (its class apart), a record
// written before records held a class (its reason the failure's text,
// "permanent: <reason>"), and an archived task with no record (asynq's last
// error only).
func TestArchivedFailuresOfEveryFormRead(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	queue := task.NewQueue(env.Redis, env.Queue, time.Minute)
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)

	past := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	failedAt := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	secret := `{"username":"seller@itc.com","password":"pw-do-not-show"}`
	const reason = "credentials rejected (401)"
	results := map[int64]string{
		// Today's record.
		31: string(task.Failure{Class: new(token.ClassPermanent), Reason: reason, Credentials: "fp-do-not-show", At: failedAt}.Marshal()),
		// A record written before the class was recorded apart.
		32: `{"reason":"permanent: ` + reason + `","inputFields_fingerprint":"fp-do-not-show","at":"` + failedAt.Format(time.RFC3339) + `"}`,
		// No record: asynq's last error only.
		33: "",
	}
	for id := range results {
		env.Insert(t, testenv.Row{ID: id, InputFields: &secret, RefreshToken: testenv.Str("rt-do-not-show"), ExpiresAt: &past})
		queued, err := queue.Enqueue(context.Background(), task.Payload{ConnectionID: id, IntegrationType: "16", DueExpiry: &past})
		require.NoError(t, err)
		require.True(t, queued)
	}

	srv := asynq.NewServerFromRedisClient(env.Redis, asynq.Config{
		Concurrency: 1, Queues: map[string]int{env.Queue: 1}, TaskCheckInterval: 20 * time.Millisecond,
		LogLevel: asynq.FatalLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeRefresh, func(_ context.Context, tk *asynq.Task) error {
		p, err := task.Parse(tk)
		if err != nil {
			return err
		}
		if r := results[p.ConnectionID]; r != "" {
			if _, err := tk.ResultWriter().Write([]byte(r)); err != nil {
				return err
			}
		}
		// The handler's error, as asynq keeps it: "permanent: <reason>".
		return fmt.Errorf("permanent: %s: %w", reason, asynq.SkipRetry)
	})
	require.NoError(t, srv.Start(mux))
	for id := range results {
		testenv.Eventually(t, 20*time.Second, "the refresh to be archived", func() bool {
			info, err := inspector.GetTaskInfo(env.Queue, task.ID(id))
			return err == nil && info.State == asynq.TaskStateArchived
		})
	}
	srv.Shutdown()

	targets := []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}}
	a, err := api.New(api.Config{Token: apiToken, Targets: targets}, store, queue, nil, zap.NewNop())
	require.NoError(t, err)
	hs := httptest.NewServer(a)
	t.Cleanup(hs.Close)
	get := func(path string, v any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, hs.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
		require.NotContains(t, string(body), "do-not-show")
		require.NotContains(t, string(body), "seller@itc.com")
		require.NoError(t, json.Unmarshal(body, v))
	}

	for id := range results {
		var c api.Connection
		get(fmt.Sprintf("/v1/connections/%d", id), &c)
		assert.Equal(t, token.StateFailing, c.State, "connection %d", id)
		require.NotNil(t, c.LastAttempt, "connection %d", id)
		assert.Equal(t, token.ClassPermanent.String(), c.LastAttempt.Outcome, "connection %d", id)
		assert.Equal(t, reason, c.LastAttempt.Reason, "connection %d", id)
	}

	var l api.List
	get("/v1/connections?state=failing", &l)
	require.Len(t, l.Connections, len(results))
	for _, c := range l.Connections {
		assert.Equal(t, reason, c.Reason, "connection %d", c.ConnectionID)
		assert.NotNil(t, c.FailedAt, "connection %d", c.ConnectionID)
	}
}
