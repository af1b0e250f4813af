package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestNextRefreshIsTheSchedulersRefreshPoint: a marketplace issues 3-minute
// tokens under a 10-minute refresh_before, so each token is refreshed on
// its own clock, a third of its lifetime before expiry. The refresh
// handler stores one (real MariaDB) and schedules its wake-up and records
// its lifetime (real Redis); the connection view then gives as
// next_refresh_at the refresh point the scheduler used, and the wake-up
// asynq holds is at most its jitter earlier. The view used to ignore the
// recorded lifetime and answer "now" (the token is inside refresh_before).
func TestNextRefreshIsTheSchedulersRefreshPoint(t *testing.T) {
	t.Parallel()
	const before, lifetime = 10 * time.Minute, 3 * time.Minute
	env := testenv.New(t)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	queue := task.NewQueue(env.Redis, env.Queue, time.Minute)

	past := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	secret := `{"client_id":"c","client_secret":"do-not-show"}`
	env.Insert(t, testenv.Row{ID: 21, InputFields: &secret, RefreshToken: testenv.Str("rt-do-not-show"), ExpiresAt: &past})

	target := token.Target{IntegrationType: "16", Kind: "oauth2_refresh", RefreshBefore: before}
	require.True(t, target.OwnClock())
	prov := &countingProvider{}
	prov.refresh = func(context.Context, token.Connection) (token.Token, error) {
		return token.Token{AccessToken: "at-do-not-show", ExpiresAt: time.Now().Truncate(time.Second).Add(lifetime)}, nil
	}
	h := refresh.New(store, lease.New(env.Redis, env.Queue, 0),
		map[string]refresh.Marketplace{"16": {Target: target, Client: prov}},
		refresh.Config{Scheduler: queue}, zap.NewNop(), nil)
	b, err := json.Marshal(task.Payload{ConnectionID: 21, IntegrationType: "16", DueExpiry: &past})
	require.NoError(t, err)
	require.NoError(t, h.ProcessTask(context.Background(), asynq.NewTask(task.TypeRefresh, b)))
	require.EqualValues(t, 1, prov.calls.Load())

	// What the scheduler recorded and scheduled.
	gens, err := queue.Generations(context.Background(), []int64{21})
	require.NoError(t, err)
	gen, ok := gens[21]
	require.True(t, ok, "a short-lived token's lifetime is recorded")
	require.Less(t, gen.Lifetime, before)
	exp := gen.ExpiresAt.UTC()
	point := token.RefreshAt(exp, before, gen.Lifetime)
	wake, err := asynq.NewInspectorFromRedisClient(env.Redis).GetTaskInfo(env.Queue, task.WakeID(21, exp))
	require.NoError(t, err, "the wake-up of the stored token")

	a, err := api.New(api.Config{Token: apiToken, Targets: []token.Target{target}}, store, queue, nil, zap.NewNop())
	require.NoError(t, err)
	resp, body := call(t, a, http.MethodGet, "/v1/connections/21", "Bearer "+apiToken)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.NotContains(t, body, "do-not-show")
	var v api.Connection
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	require.NotNil(t, v.ExpiresAt)
	require.True(t, exp.Equal(*v.ExpiresAt), "the stored token is the one scheduled")
	require.NotNil(t, v.NextRefreshAt)
	assert.True(t, point.Equal(*v.NextRefreshAt), "next_refresh_at %s is the scheduler's refresh point %s (%s)",
		v.NextRefreshAt, point, v.NextRefresh)
	lead := token.Lead(before, gen.Lifetime)
	assert.False(t, wake.NextProcessAt.After(*v.NextRefreshAt), "the wake-up %s is not later than next_refresh_at %s", wake.NextProcessAt, v.NextRefreshAt)
	assert.False(t, wake.NextProcessAt.Before(v.NextRefreshAt.Add(-token.Spread(lead)-time.Second)),
		"the wake-up %s is early by its jitter at most", wake.NextProcessAt)
}

// countingProvider is a marketplace client that counts its calls.
type countingProvider struct {
	calls   atomic.Int64
	refresh func(context.Context, token.Connection) (token.Token, error)
}

func (p *countingProvider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	p.calls.Add(1)
	return p.refresh(ctx, c)
}
