package census_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

type fakeStore struct {
	CountStatesFunc func(ctx context.Context, typ string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error)
}

func (f fakeStore) CountStates(ctx context.Context, typ string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error) {
	return f.CountStatesFunc(ctx, typ, now, dueBefore, failing)
}

type fakeArchive struct {
	ListArchivedFunc func() (map[int64]task.Archived, error)
}

func (f fakeArchive) ListArchived() (map[int64]task.Archived, error) { return f.ListArchivedFunc() }

type recorder struct{ counts [][]census.Count }

func (r *recorder) Counted(c []census.Count) { r.counts = append(r.counts, c) }

var targets = []token.Target{
	{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute},
	{IntegrationType: "42", Kind: "oauth2_refresh", RefreshBefore: 5 * time.Minute},
}

func TestTakeCountsEveryTarget(t *testing.T) {
	t.Parallel()
	var windows []time.Duration
	store := fakeStore{func(_ context.Context, typ string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error) {
		windows = append(windows, dueBefore.Sub(now))
		switch typ {
		case "16":
			assert.Equal(t, map[int64]bool{1: true, 2: true}, failing, "the failing ids of its own type")
			return token.StateCounts{Fresh: 5, Due: 1, Expired: 2, ExpiredFailing: 1}, nil
		default:
			assert.Equal(t, map[int64]bool{3: true}, failing)
			return token.StateCounts{Fresh: 1}, nil
		}
	}}
	archive := fakeArchive{func() (map[int64]task.Archived, error) {
		return map[int64]task.Archived{
			1: {IntegrationType: "16"}, 2: {IntegrationType: "16"}, 3: {IntegrationType: "42"}, 4: {IntegrationType: "77"},
		}, nil
	}}
	got, err := census.New(store, archive, targets).Take(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []census.Count{
		{IntegrationType: "16", Provider: "ajio", Active: 8, Fresh: 5, Due: 1, Expired: 2, Failing: 2, ExpiredFailing: 1},
		{IntegrationType: "42", Provider: "oauth2_refresh", Active: 1, Fresh: 1, Failing: 1},
	}, got)
	assert.Equal(t, []time.Duration{10 * time.Minute, 5 * time.Minute}, windows, "each provider's own refresh window")
}

func TestOneFailingTargetDoesNotHideTheOthers(t *testing.T) {
	t.Parallel()
	store := fakeStore{func(_ context.Context, typ string, _, _ time.Time, _ map[int64]bool) (token.StateCounts, error) {
		if typ == "16" {
			return token.StateCounts{}, errors.New("deadlock")
		}
		return token.StateCounts{Expired: 3}, nil
	}}
	archive := fakeArchive{func() (map[int64]task.Archived, error) { return nil, errors.New("redis down") }}
	c := census.New(store, archive, targets)
	got, err := c.Take(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "integration type 16")
	assert.Contains(t, err.Error(), "redis down")
	assert.Equal(t, []census.Count{{IntegrationType: "42", Provider: "oauth2_refresh", Active: 3, Expired: 3}}, got)

	logs := &testenv.Logs{}
	rec := &recorder{}
	c.RunOnce(context.Background(), rec, logs.Logger())
	require.Len(t, rec.counts, 1, "what could be counted reaches the gauges")
	assert.Contains(t, logs.String(), "census of connections failed")
	assert.Contains(t, logs.String(), "active connections hold an expired token")
}

func TestWatchStopsWithItsContext(t *testing.T) {
	t.Parallel()
	store := fakeStore{func(context.Context, string, time.Time, time.Time, map[int64]bool) (token.StateCounts, error) {
		return token.StateCounts{Fresh: 1}, nil
	}}
	c := census.New(store, nil, targets[:1])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	counted := make(chan struct{}, 16)
	go func() {
		c.Watch(ctx, 10*time.Millisecond, observerFunc(func([]census.Count) {
			select {
			case counted <- struct{}{}:
			default: // the test has seen enough
			}
		}), zap.NewNop())
		close(done)
	}()
	for range 2 {
		select {
		case <-counted:
		case <-time.After(10 * time.Second):
			t.Fatal("no census within 10s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}

type observerFunc func([]census.Count)

func (f observerFunc) Counted(c []census.Count) { f(c) }

// The first census of Watch runs beside the first scan, before any refresh
// could land: it sets the gauges but does not warn about the tokens that
// lapsed while nothing ran. The second one does.
func TestWatchWarnsFromItsSecondCensus(t *testing.T) {
	t.Parallel()
	store := fakeStore{func(context.Context, string, time.Time, time.Time, map[int64]bool) (token.StateCounts, error) {
		return token.StateCounts{Expired: 3}, nil
	}}
	c := census.New(store, nil, targets[:1])
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &testenv.Logs{}
	// The observer holds each turn until the test has looked: a turn warns
	// after it has told the observer.
	turn := make(chan struct{})
	resume := make(chan struct{})
	go c.Watch(ctx, 10*time.Millisecond, observerFunc(func([]census.Count) {
		select {
		case turn <- struct{}{}:
			<-resume
		case <-ctx.Done():
		}
	}), logs.Logger())
	wait := func() {
		select {
		case <-turn:
		case <-time.After(10 * time.Second):
			t.Fatal("no census within 10s")
		}
	}
	wait() // first turn, held
	resume <- struct{}{}
	wait() // second turn, held: the first one has finished
	assert.NotContains(t, logs.String(), "expired token", "the first census does not warn")
	resume <- struct{}{}
	wait() // third turn, held: the second one has finished
	assert.Contains(t, logs.String(), "active connections hold an expired token")
	cancel()
	resume <- struct{}{}
}

// gauges records what Lead tells the gauges, in order.
type gauges struct {
	mu     sync.Mutex
	events []string
}

func (g *gauges) Counted([]census.Count) { g.add("counted") }
func (g *gauges) Forget()                { g.add("forgot") }
func (g *gauges) add(e string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.events = append(g.events, e)
}
func (g *gauges) last() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.events) == 0 {
		return ""
	}
	return g.events[len(g.events)-1]
}

// TestLeadForgetsTheGaugesWhenTheLeaseIsLost: on real Redis, a process
// that takes the census lease sets the gauges; when its lease is taken away
// (it expired while Redis was out of reach, and another replica took it), it
// withdraws them at once rather than serve an old count as current; and it
// serves nothing while the other holds the lease.
func TestLeadForgetsTheGaugesWhenTheLeaseIsLost(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	leases := lease.New(rdb, "t_"+testenv.RandomID(), 300*time.Millisecond)
	store := fakeStore{func(context.Context, string, time.Time, time.Time, map[int64]bool) (token.StateCounts, error) {
		return token.StateCounts{Expired: 1}, nil
	}}
	g := &gauges{}
	logs := &testenv.Logs{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		census.New(store, nil, targets[:1]).Lead(ctx, leases, "replica-a", time.Hour, 50*time.Millisecond, g, logs.Logger())
		close(done)
	}()
	testenv.Eventually(t, 10*time.Second, "the first census", func() bool { return g.last() == "counted" })

	// Another replica's lease replaces ours, as after an expiry.
	require.NoError(t, rdb.Set(context.Background(), leases.RoleKey(census.LeaseRole), "someone-else", time.Minute).Err())
	testenv.Eventually(t, 10*time.Second, "the gauges withdrawn", func() bool { return g.last() == "forgot" })
	// The gauges are withdrawn before the line is logged: wait for it.
	testenv.Eventually(t, 10*time.Second, "the loss logged", func() bool {
		return strings.Contains(logs.String(), "lost the census lease")
	})
	time.Sleep(300 * time.Millisecond) // several tries while the other holds it
	assert.Equal(t, "forgot", g.last(), "no census while another replica holds the lease")

	// The other replica is gone: this one takes the census again.
	require.NoError(t, rdb.Del(context.Background(), leases.RoleKey(census.LeaseRole)).Err())
	testenv.Eventually(t, 10*time.Second, "the census taken again", func() bool { return g.last() == "counted" })
	cancel()
	<-done
	assert.Equal(t, "forgot", g.last(), "a process that stops withdraws its gauges")
	assert.Zero(t, rdb.Exists(context.Background(), leases.RoleKey(census.LeaseRole)).Val(), "and releases the lease")
}
