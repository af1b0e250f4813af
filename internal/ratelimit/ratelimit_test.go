package ratelimit

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

func TestNoLimit(t *testing.T) {
	t.Parallel()
	assert.Nil(t, New(nil, "k", 0))
	assert.Nil(t, New(nil, "k", -1))
}

// TestSharedAcrossReplicas: three "replicas" (limiters on their own clients)
// hammering one key get, together, no more than the rate in any second.
func TestSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	key := Key(env.Queue, "16")
	t.Cleanup(func() { env.Redis.Del(context.Background(), "rate:"+key) })

	const rate = 10
	var mu sync.Mutex
	var granted []time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		l := New(env.Redis, key, rate)
		require.NotNil(t, l)
		for range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					wait, err := l.Take(ctx)
					if ctx.Err() != nil {
						return
					}
					require.NoError(t, err)
					if wait == 0 {
						mu.Lock()
						granted = append(granted, time.Now())
						mu.Unlock()
						continue
					}
					assert.LessOrEqual(t, wait, time.Duration((1+Headroom)*float64(time.Second)/rate), "the next slot is at most one interval away")
					select {
					case <-time.After(wait):
					case <-ctx.Done():
					}
				}
			})
		}
	}
	wg.Wait()
	// 2.5s at 10/s less the headroom: about 23 grants (the first one
	// free). The grants are decided on Redis's clock, so the count, not
	// their local spacing, is what is asserted.
	assert.LessOrEqual(t, len(granted), 26, "no more than the rate allows over the run")
	assert.GreaterOrEqual(t, len(granted), 15, "waiting callers do get slots")
}

func TestFractionalRate(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	key := Key(env.Queue, "43")
	t.Cleanup(func() { env.Redis.Del(context.Background(), "rate:"+key) })
	l := New(env.Redis, key, 0.5)
	wait, err := l.Take(context.Background())
	require.NoError(t, err)
	assert.Zero(t, wait)
	wait, err = l.Take(context.Background())
	require.NoError(t, err)
	assert.InDelta(t, 2200*time.Millisecond, wait, float64(200*time.Millisecond), "half a call per second: the next in 2s plus headroom")
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	l := New(env.Redis, Key(env.Queue, "16"), 5)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := l.Take(ctx)
	assert.Error(t, err, "a limiter that cannot ask Redis does not grant")
}
