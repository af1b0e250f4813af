package refresh

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

type bundle struct {
	store    *FakeStore
	provider *FakeProvider
	breaker  *breaker.Breaker
	handler  *Handler
}

func setup(t *testing.T, limiter Limiter, cfg Config) *bundle {
	t.Helper()
	b := &bundle{
		store: &FakeStore{Conn: token.Connection{ID: 7, InputFields: []byte(`{}`)}},
		provider: &FakeProvider{RefreshFn: func(context.Context, token.Connection) (token.Token, error) {
			return token.Token{AccessToken: "at", ExpiresAt: time.Now().Add(time.Hour)}, nil
		}},
		breaker: breaker.New(breaker.Config{Failures: 2, Cooldown: time.Minute}),
	}
	b.handler = New(b.store, testenv.Leases(t), map[string]Marketplace{"16": {
		Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}, Client: b.provider,
		CallTimeout: time.Second, Limiter: limiter, Breaker: b.breaker,
	}}, cfg, zap.NewNop(), nil)
	return b
}

func refreshTask(t *testing.T) *asynq.Task { return refreshTaskOf(t, 7) }

// refreshTaskOf is the task of another connection: connections have leases
// of their own, so tasks of different ones run side by side.
func refreshTaskOf(t *testing.T, connectionID int64) *asynq.Task {
	t.Helper()
	payload, err := json.Marshal(task.Payload{ConnectionID: connectionID, IntegrationType: "16"})
	require.NoError(t, err)
	return asynq.NewTask(task.TypeRefresh, payload)
}

func TestBreakerOpenDefersWithoutCalling(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, Config{})
	b.provider.RefreshFn = func(context.Context, token.Connection) (token.Token, error) {
		return token.Token{}, token.Transient("ajio answered HTTP 503")
	}
	ctx := context.Background()
	for range 2 {
		err := b.handler.ProcessTask(ctx, refreshTask(t))
		require.Error(t, err)
		assert.True(t, IsFailure(err), "a marketplace failure is a failure")
	}
	require.Equal(t, breaker.Open, b.breaker.State())

	err := b.handler.ProcessTask(ctx, refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d)
	assert.False(t, IsFailure(err), "waiting for the breaker spends no retry")
	assert.InDelta(t, time.Minute, d.After, float64(time.Second), "comes back when the cool-off ends")
	assert.EqualValues(t, 2, b.provider.Calls.Load(), "no call while the breaker is open")
}

func TestTransientFailureOfLiveTokenCarriesLifetime(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, Config{})
	exp := time.Now().Add(40 * time.Second)
	b.store.Conn.ExpiresAt = &exp
	b.provider.RefreshFn = func(context.Context, token.Connection) (token.Token, error) {
		return token.Token{}, token.Transient("ajio answered HTTP 500")
	}
	err := b.handler.ProcessTask(context.Background(), refreshTask(t))
	var e *expiringError
	require.ErrorAs(t, err, &e)
	assert.InDelta(t, 40*time.Second, e.left, float64(2*time.Second))
	assert.Equal(t, "transient: ajio answered HTTP 500", err.Error(), "the reason shown is unchanged")
	assert.True(t, IsFailure(err))

	expired := time.Now().Add(-time.Minute)
	b.store.Conn.ExpiresAt = &expired
	err = b.handler.ProcessTask(context.Background(), refreshTask(t))
	assert.False(t, errors.As(err, &e), "an expired token: plain backoff")
}

func TestRejectionKeepsBreakerClosed(t *testing.T) {
	t.Parallel()
	b := setup(t, nil, Config{})
	b.provider.RefreshFn = func(context.Context, token.Connection) (token.Token, error) {
		f := token.Permanent("ajio rejected the credentials")
		f.Status = 200
		return token.Token{}, f
	}
	for range 5 {
		err := b.handler.ProcessTask(context.Background(), refreshTask(t))
		assert.ErrorIs(t, err, asynq.SkipRetry)
	}
	assert.Equal(t, breaker.Closed, b.breaker.State(), "a marketplace that answers is up")
}

func TestRateLimitWaitsInPlace(t *testing.T) {
	t.Parallel()
	var takes atomic.Int64
	lim := &FakeLimiter{Rate: 10, TakeFn: func(context.Context) (time.Duration, error) {
		if takes.Add(1) < 3 {
			return 20 * time.Millisecond, nil
		}
		return 0, nil
	}}
	b := setup(t, lim, Config{})
	require.NoError(t, b.handler.ProcessTask(context.Background(), refreshTask(t)))
	assert.EqualValues(t, 3, takes.Load(), "waited for two slots, then called")
	assert.EqualValues(t, 1, b.provider.Calls.Load())
	assert.Len(t, b.store.Saved(), 1)
}

func TestRateLimitDefersWhenNoSlotSoon(t *testing.T) {
	t.Parallel()
	lim := &FakeLimiter{Rate: 0.1, TakeFn: func(context.Context) (time.Duration, error) { return 9 * time.Second, nil }}
	b := setup(t, lim, Config{RateWait: time.Second})
	err := b.handler.ProcessTask(context.Background(), refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d)
	assert.False(t, IsFailure(err))
	assert.Equal(t, 9*time.Second, d.After)
	assert.Zero(t, b.provider.Calls.Load())
	done, wait := b.breaker.Acquire()
	assert.Zero(t, wait, "the breaker is not held by a deferred attempt")
	done(breaker.Ignore)
}

func TestRateLimitDeadlineBoundsTheWait(t *testing.T) {
	t.Parallel()
	lim := &FakeLimiter{Rate: 1, TakeFn: func(context.Context) (time.Duration, error) { return 500 * time.Millisecond, nil }}
	b := setup(t, lim, Config{RateWait: time.Minute})
	// 1.2s left, of which the call needs 1s: no room to wait 500ms.
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	err := b.handler.ProcessTask(ctx, refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d)
	assert.Zero(t, b.provider.Calls.Load())
}

func TestRateLimitCapsWaitingWorkers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var waiting atomic.Int64
	lim := &FakeLimiter{Rate: 2, TakeFn: func(ctx context.Context) (time.Duration, error) {
		select {
		case <-release:
			return 0, nil
		default:
			waiting.Add(1)
			<-release
			return 0, nil
		}
	}}
	b := setup(t, lim, Config{RateWait: time.Second})
	// 2/s × 1s: two workers may wait; a third is deferred at once.
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { assert.NoError(t, b.handler.ProcessTask(context.Background(), refreshTaskOf(t, int64(100+i)))) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for waiting.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.EqualValues(t, 2, waiting.Load())
	err := b.handler.ProcessTask(context.Background(), refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d)
	assert.Equal(t, time.Second, d.After, "two ahead at 2/s: about a second")
	close(release)
	wg.Wait()
	assert.EqualValues(t, 2, b.provider.Calls.Load())
}

func TestRateLimiterDownIsTransient(t *testing.T) {
	t.Parallel()
	lim := &FakeLimiter{Rate: 5, TakeFn: func(context.Context) (time.Duration, error) { return 0, errors.New("redis: connection refused") }}
	b := setup(t, lim, Config{})
	err := b.handler.ProcessTask(context.Background(), refreshTask(t))
	require.Error(t, err)
	assert.True(t, IsFailure(err))
	assert.NotErrorIs(t, err, asynq.SkipRetry)
	assert.Zero(t, b.provider.Calls.Load(), "no slot, no call")
}

// TestBacklogOrdersCallsByDeadline: with a marketplace backlog, a scanned
// task whose token expires after the ones waiting is put back without a
// call until its turn, while an on-demand (forced) refresh of the same
// connection goes first: a service was just refused its token. A slot that
// is free when a task outside the window asks is one nobody ahead is
// there to take: that task takes it, so the rate is never left unused.
func TestBacklogOrdersCallsByDeadline(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	list := backlog.New(env.Redis, env.Queue, "16", backlog.Config{Interval: 100 * time.Millisecond, Window: 1, Horizon: 10 * time.Minute})
	ctx := context.Background()
	now := time.Now()
	for id, d := range map[int64]time.Duration{1: 5 * time.Second, 2: 6 * time.Second} {
		exp := now.Add(d)
		_, err := list.Place(ctx, id, &exp, now, time.Minute)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for _, id := range []int64{1, 2, 7} {
			list.Leave(context.Background(), id)
		}
	})
	// A slot frees every time the test says so; otherwise the next one is
	// 100ms away (a head waiting in place would take it then).
	var free atomic.Bool
	lim := &FakeLimiter{Rate: 10, TakeFn: func(context.Context) (time.Duration, error) {
		if free.CompareAndSwap(true, false) {
			return 0, nil
		}
		return 100 * time.Millisecond, nil
	}}
	b := setup(t, lim, Config{RateWait: 300 * time.Millisecond})
	m := b.handler.markets["16"]
	m.Backlog = list
	m.RefreshBefore = 2 * time.Hour // the row's token, expiring in an hour, is due
	b.handler.markets["16"] = m
	expiry := now.Add(time.Hour).Truncate(time.Second)
	b.store.Conn.ExpiresAt = &expiry
	b.store.Conn.AccessToken = "refused-by-the-marketplace"

	err := b.handler.ProcessTask(ctx, refreshTask(t))
	var d *DeferredError
	require.ErrorAs(t, err, &d, "two tokens expiring sooner wait ahead of it")
	assert.Equal(t, 200*time.Millisecond, d.After, "back about when its turn comes: two places past the window, at 100ms a slot")
	assert.Zero(t, b.provider.Calls.Load())

	free.Store(true)
	forced, err := task.New(task.Payload{ConnectionID: 7, IntegrationType: "16", DueExpiry: &expiry, Forced: true}, task.UrgentQueue("q"), time.Minute)
	require.NoError(t, err)
	require.NoError(t, b.handler.ProcessTask(ctx, asynq.NewTask(forced.Type(), forced.Payload())))
	assert.EqualValues(t, 1, b.provider.Calls.Load(), "the on-demand refresh goes ahead of the backlog")
	p, err := list.Place(ctx, 1, ptr(now.Add(5*time.Second)), now, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 0, p.Rank, "the forced refresh left the backlog when it took its slot")
	assert.Equal(t, 2, p.Len)

	// Connections 1 and 2 are ahead, but their tasks are not here to take
	// the slot that is free now: the scanned task takes it.
	free.Store(true)
	require.NoError(t, b.handler.ProcessTask(ctx, refreshTask(t)))
	assert.EqualValues(t, 2, b.provider.Calls.Load(), "a free slot is not left unused")
}

func ptr[T any](v T) *T { return &v }
