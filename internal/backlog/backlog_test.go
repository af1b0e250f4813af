package backlog

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

func newList(t *testing.T, cfg Config) (*List, *testenv.Env) {
	t.Helper()
	env := testenv.New(t)
	l := New(env.Redis, env.Queue, "16", cfg)
	t.Cleanup(func() { env.Redis.Del(context.Background(), l.keys...) })
	return l, env
}

func at(t time.Time) *time.Time { return &t }

// TestEarliestExpiryRanksFirst: whatever order tasks arrive in, the rank is
// the order of expiry, and only the window's head waits in place.
func TestEarliestExpiryRanksFirst(t *testing.T) {
	t.Parallel()
	l, env := newList(t, Config{Interval: 100 * time.Millisecond, Window: 2, Horizon: 10 * time.Minute})
	ctx := context.Background()
	now := time.Now()
	// Arrival order 1..5; expiry order 4, 2, 5, 1, 3.
	exp := map[int64]time.Duration{1: 40 * time.Second, 2: 20 * time.Second, 3: 50 * time.Second, 4: 10 * time.Second, 5: 30 * time.Second}
	for id := int64(1); id <= 5; id++ {
		_, err := l.Place(ctx, id, at(now.Add(exp[id])), now, 2*time.Second)
		require.NoError(t, err)
	}
	want := map[int64]int{4: 0, 2: 1, 5: 2, 1: 3, 3: 4}
	for id, rank := range want {
		p, err := l.Place(ctx, id, at(now.Add(exp[id])), now, 2*time.Second)
		require.NoError(t, err)
		assert.Equal(t, rank, p.Rank, "connection %d", id)
		assert.Equal(t, 5, p.Len)
		if rank < 2 {
			assert.Zero(t, p.After, "connection %d is in the window: it waits in place", id)
		} else {
			assert.Equal(t, time.Duration(rank-1)*100*time.Millisecond, p.After, "connection %d comes back about when its turn comes", id)
		}
	}
	// The head takes its slot and leaves (all three sets): everyone moves
	// up.
	require.NoError(t, l.Leave(ctx, 4))
	for _, k := range l.keys {
		assert.ErrorIs(t, env.Redis.ZScore(ctx, k, "4").Err(), redis.Nil, "left %s", k)
	}
	p, err := l.Place(ctx, 3, at(now.Add(exp[3])), now, 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 3, p.Rank)
	assert.Equal(t, 4, p.Len)
}

// TestLapsedGoesBehindLive: a lapsed token (or none) is ranked behind every
// live token due now, but ahead of work that falls due after the horizon,
// and a live entry that lapses while it waits is moved behind too.
func TestLapsedGoesBehindLive(t *testing.T) {
	t.Parallel()
	l, _ := newList(t, Config{Interval: 100 * time.Millisecond, Window: 1, Horizon: time.Minute})
	ctx := context.Background()
	now := time.Now()
	_, err := l.Place(ctx, 1, at(now.Add(-time.Hour)), now, 10*time.Minute) // lapsed an hour ago
	require.NoError(t, err)
	_, err = l.Place(ctx, 2, nil, now, 10*time.Minute) // never had a token
	require.NoError(t, err)
	_, err = l.Place(ctx, 3, at(now.Add(50*time.Second)), now, 10*time.Minute)
	require.NoError(t, err)
	_, err = l.Place(ctx, 4, at(now.Add(2*time.Second)), now, 10*time.Minute)
	require.NoError(t, err)
	_, err = l.Place(ctx, 5, at(now.Add(2*time.Minute)), now, 10*time.Minute) // due after the horizon
	require.NoError(t, err)

	rank := func(id int64, exp *time.Time, now time.Time) int {
		p, err := l.Place(ctx, id, exp, now, 10*time.Minute)
		require.NoError(t, err)
		return p.Rank
	}
	assert.Equal(t, 0, rank(4, at(now.Add(2*time.Second)), now))
	assert.Equal(t, 1, rank(3, at(now.Add(50*time.Second)), now))
	assert.Less(t, rank(1, at(now.Add(-time.Hour)), now), 4, "a lapsed token goes before work due after the horizon")
	assert.Equal(t, 4, rank(5, at(now.Add(2*time.Minute)), now))

	// Three seconds on, connection 4's token lapsed while it waited: it
	// goes behind the live token 3, and the lapsed ones keep the deadline
	// they were given (first found, first served).
	later := now.Add(3 * time.Second)
	assert.Equal(t, 0, rank(3, at(now.Add(50*time.Second)), later))
	assert.Equal(t, 1, rank(1, at(now.Add(-time.Hour)), later))
	assert.Equal(t, 2, rank(2, nil, later))
	assert.Equal(t, 3, rank(4, at(now.Add(2*time.Second)), later))

	// Past the horizon the lapsed ones are served before work that falls
	// due then: no one waits forever.
	muchLater := now.Add(90 * time.Second)
	assert.Equal(t, 0, rank(1, at(now.Add(-time.Hour)), muchLater))
	assert.Greater(t, rank(5, at(now.Add(2*time.Minute)), muchLater), 2)
}

// TestEntryOfVanishedTaskExpires: a task that never comes back (killed, or
// its connection refreshed by another path) stops holding others back once
// the time it was told to come back, plus Grace, has passed.
func TestEntryOfVanishedTaskExpires(t *testing.T) {
	t.Parallel()
	l, _ := newList(t, Config{Interval: 100 * time.Millisecond, Window: 1, Horizon: time.Minute})
	ctx := context.Background()
	now := time.Now()
	_, err := l.Place(ctx, 1, at(now.Add(30*time.Second)), now, 2*time.Second)
	require.NoError(t, err)
	p, err := l.Place(ctx, 2, at(now.Add(40*time.Second)), now, 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Rank)

	p, err = l.Place(ctx, 2, at(now.Add(40*time.Second)), now.Add(2*time.Second+Grace-time.Millisecond), 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Rank, "connection 1's task may still come back")
	p, err = l.Place(ctx, 2, at(now.Add(40*time.Second)), now.Add(2*time.Second+Grace+time.Millisecond), 2*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, p.Rank, "connection 1's task did not come back in time")
	assert.Equal(t, 1, p.Len)
}

// TestForecast: at the pace of the rate limit, the entries whose turn comes
// after their expiry are at risk, and the least slack is the tightest one.
func TestForecast(t *testing.T) {
	t.Parallel()
	l, _ := newList(t, Config{Interval: time.Second, Window: 1, Horizon: time.Minute})
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)
	// Turns at +1s, +2s, +3s, +4s: the third (expiring at +2.5s) and the
	// fourth (+3.5s) lapse before theirs; one more is already lapsed and
	// goes last.
	for id, d := range map[int64]time.Duration{1: 5 * time.Second, 2: 1500 * time.Millisecond, 3: 2500 * time.Millisecond, 4: 3500 * time.Millisecond} {
		_, err := l.Place(ctx, id, at(now.Add(d)), now, time.Second)
		require.NoError(t, err)
	}
	_, err := l.Place(ctx, 9, at(now.Add(-time.Minute)), now, time.Second)
	require.NoError(t, err)

	f, err := l.Forecast(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, 5, f.Waiting)
	assert.Equal(t, 1, f.Lapsed)
	// In order: 2 (turn +1s, slack .5s), 3 (+2s, .5s), 4 (+3s, .5s), 1 (+4s, 1s).
	assert.Equal(t, 0, f.AtRisk)
	assert.Equal(t, 500*time.Millisecond, f.LeastSlack)

	f, err = l.Forecast(ctx, now.Add(1200*time.Millisecond))
	require.NoError(t, err)
	// Now 2 (slack 1.5-2.2 = -.7s), 3 (2.5-3.2), 4 (3.5-4.2): all three
	// at risk; 1 is not (5-5.2 = -.2s: at risk too).
	assert.Equal(t, 4, f.AtRisk)
	assert.Equal(t, -700*time.Millisecond, f.LeastSlack)

	empty, _ := newList(t, Config{Interval: time.Second})
	f, err = empty.Forecast(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, Forecast{}, f)
}

// TestSharedAcrossReplicas: two lists on separate clients (two replicas)
// see one backlog.
func TestSharedAcrossReplicas(t *testing.T) {
	t.Parallel()
	l, env := newList(t, Config{Interval: 100 * time.Millisecond, Window: 1, Horizon: time.Minute})
	other := redis.NewClient(&redis.Options{Addr: env.Redis.Options().Addr})
	t.Cleanup(func() { other.Close() })
	l2 := New(other, env.Queue, "16", Config{Interval: 100 * time.Millisecond, Window: 1, Horizon: time.Minute})
	ctx := context.Background()
	now := time.Now()
	_, err := l.Place(ctx, 1, at(now.Add(30*time.Second)), now, time.Second)
	require.NoError(t, err)
	p, err := l2.Place(ctx, 2, at(now.Add(10*time.Second)), now, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, p.Rank)
	p, err = l.Place(ctx, 1, at(now.Add(30*time.Second)), now, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, p.Rank, "the other replica's more urgent task is ahead")
}
