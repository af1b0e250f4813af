package fault

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/bench"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// The freshness-under-overload suite (issue "Freshness under overload"):
// more due work than a marketplace's rate limit serves at once, and the
// token that expires first must be refreshed first, fleet-wide, whatever
// order the work arrives in (connection ids, retries, deferrals).

// overloadKind is an Ajio marketplace of 10 calls a second whose
// refresh_before (15m) makes every seeded connection due at once.
var overloadKind = kind{IntegrationType: "16", Kind: "ajio", RefreshBefore: 15 * time.Minute, Timeout: 5 * time.Second, RatePerSecond: 10}

// backlog is a seeded set of due connections and their tokens' expiries.
type backlog struct {
	users  map[int64]string
	expiry map[int64]time.Time
	urgent map[int64]bool
}

// seedBacklog seeds urgent connections whose tokens expire evenly within
// [urgentFrom, urgentTo] from now and later ones within [laterFrom,
// laterTo], with the expiries dealt to the ids in a random order: neither
// id order nor insertion order says anything about the deadline.
func (s *system) seedBacklog(firstID int64, urgent, later int, urgentFrom, urgentTo, laterFrom, laterTo time.Duration) backlog {
	s.t.Helper()
	n := urgent + later
	now := time.Now().UTC()
	spread := func(i, of int, from, to time.Duration) time.Time {
		if of <= 1 {
			return now.Add(from)
		}
		return now.Add(from + time.Duration(float64(to-from)*float64(i)/float64(of-1)))
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = firstID + int64(i)
	}
	rand.Shuffle(n, func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	b := backlog{users: map[int64]string{}, expiry: map[int64]time.Time{}, urgent: map[int64]bool{}}
	var rows []testenv.Row
	for i, id := range ids {
		var exp time.Time
		if i < urgent {
			exp = spread(i, urgent, urgentFrom, urgentTo)
			b.urgent[id] = true
		} else {
			exp = spread(i-urgent, later, laterFrom, laterTo)
		}
		exp = exp.Truncate(time.Second) // a DATETIME holds whole seconds
		u, p := seller(fmt.Sprintf("b%d-%s", id, s.env.Queue))
		b.users[id], b.expiry[id] = u, exp
		rows = append(rows, testenv.Row{ID: id, IntegrationType: overloadKind.IntegrationType, InputFields: creds(u, p),
			ExpiresAt: &exp, AccessToken: testenv.Str(fmt.Sprintf("old-%d", id))})
	}
	s.env.Insert(s.t, rows...)
	return b
}

// servedAt is when the sandbox issued each refreshed connection's stored
// token, and how many tokens it issued to the connection's seller.
func (s *system) servedAt(b backlog) (map[int64]time.Time, map[int64]int) {
	s.t.Helper()
	rows := s.rows()
	var tokens []string
	for id := range b.users {
		if r := rows[id]; r.AccessToken != nil {
			tokens = append(tokens, *r.AccessToken)
		}
	}
	g := s.market.generations(tokens)
	at, issued := map[int64]time.Time{}, map[int64]int{}
	for id, u := range b.users {
		if gen, ok := g.Users[u]; ok && gen.Issued > 0 {
			at[id], issued[id] = gen.LastAt, gen.Issued
		}
	}
	return at, issued
}

// freshness is what a backlog test reports.
type freshness struct {
	urgentLapses int
	leastSlack   time.Duration // of the urgent connections
	spearman     float64       // refresh order against expiry order, all connections
}

func (s *system) freshness(b backlog) freshness {
	s.t.Helper()
	at, _ := s.servedAt(b)
	f := freshness{leastSlack: time.Duration(math.MaxInt64)}
	var served, deadline []float64
	for id, exp := range b.expiry {
		t, ok := at[id]
		if b.urgent[id] {
			slack := exp.Sub(t)
			if !ok {
				slack = exp.Sub(time.Now())
			}
			f.leastSlack = min(f.leastSlack, slack)
			if !ok || !t.Before(exp) {
				f.urgentLapses++
			}
		}
		if ok {
			served = append(served, float64(t.UnixNano()))
			deadline = append(deadline, float64(exp.UnixNano()))
		}
	}
	f.spearman = bench.Spearman(served, deadline)
	return f
}

// TestOverloadEarliestDeadlineFirst — pass condition: 400 Ajio connections
// are due at once at 10 calls a second, 200 of them expiring within 25–50 s
// and 200 within 6–11 minutes, ids shuffled against expiries; after one
// scan, a refresher of 20 workers refreshes every urgent token before it
// expires, never calls faster than the limit, and calls each connection
// once.
func TestOverloadEarliestDeadlineFirst(t *testing.T) {
	t.Parallel()
	s := newSystem(t, overloadKind)
	b := s.seedBacklog(1, 200, 200, 25*time.Second, 50*time.Second, 6*time.Minute, 11*time.Minute)
	s.scanOnce()
	r := s.startRefresher("REFRESH_CONCURRENCY=20")

	eventually(t, 90*time.Second, "every connection refreshed", func() bool {
		at, _ := s.servedAt(b)
		return len(at) == len(b.users)
	})
	f := s.freshness(b)
	st := s.market.stats()
	calls := s.market.calls()
	figure(t, "edf backlog=400 urgent=200 rate=10/s workers=20 urgent_lapses=%d least_slack=%s spearman=%.3f calls=%d peak_per_second=%d",
		f.urgentLapses, f.leastSlack.Round(100*time.Millisecond), f.spearman, st.Calls, st.PeakPerSecond)
	assert.Zero(t, f.urgentLapses, "no urgent token lapses")
	assert.LessOrEqual(t, st.PeakPerSecond, 10, "the rate limit holds")
	for id, u := range b.users {
		assert.LessOrEqual(t, calls[u], 1, "connection %d is called once", id)
	}
	assert.Greater(t, f.spearman, 0.9, "refresh order follows expiry order")
	assert.True(t, r.running())
}

// TestOverloadAfterOutage — pass condition: the same backlog arrives
// through retries, at two refresher replicas: the marketplace answers 503
// to every call for 30 s, then recovers; every urgent token (now expiring 55–80 s after seeding) is still
// refreshed before it expires, under the limit, one token issued per
// connection.
func TestOverloadAfterOutage(t *testing.T) {
	t.Parallel()
	s := newSystem(t, overloadKind)
	s.market.setFaults(sandbox.Faults{ErrorRate: 1})
	b := s.seedBacklog(1, 200, 200, 55*time.Second, 80*time.Second, 6*time.Minute, 11*time.Minute)
	seeded := time.Now()
	s.scanOnce()
	// Two replicas of 10 workers: the order is fleet-wide, not per process.
	r1 := s.startRefresher("REFRESH_CONCURRENCY=10")
	r2 := s.startRefresher("REFRESH_CONCURRENCY=10")
	time.Sleep(time.Until(seeded.Add(30 * time.Second)))
	s.market.setFaults(sandbox.Faults{})

	eventually(t, 90*time.Second, "every connection refreshed", func() bool {
		at, _ := s.servedAt(b)
		return len(at) == len(b.users)
	})
	f := s.freshness(b)
	_, issued := s.servedAt(b)
	st := s.market.stats()
	figure(t, "edf after_outage=30s backlog=400 urgent=200 rate=10/s replicas=2 workers=2x10 urgent_lapses=%d least_slack=%s spearman=%.3f calls=%d faulted=%d peak_per_second=%d",
		f.urgentLapses, f.leastSlack.Round(100*time.Millisecond), f.spearman, st.Calls, st.Faulted, st.PeakPerSecond)
	assert.Zero(t, f.urgentLapses, "no urgent token lapses")
	assert.LessOrEqual(t, st.PeakPerSecond, 10, "the rate limit holds")
	for id := range b.users {
		assert.Equal(t, 1, issued[id], "connection %d gets one token", id)
	}
	require.True(t, r1.running() && r2.running())
}

// TestOverloadNoStarvation — pass condition: while a stream of new urgent
// work arrives faster than the rate limit serves it (12 connections a
// second, each expiring 8 s after it arrives, at 10 calls a second), a
// connection that was due first (expiring 14 s after the stream starts) is
// still refreshed before it expires: new work with earlier deadlines goes
// ahead of it only while its own deadline allows. A connection whose token
// had already lapsed is refreshed too, once the stream ends: behind live
// tokens, never dropped. The stream is more than the rate serves, so some
// of it lapses: the gauge of tokens at risk says so before the first does.
func TestOverloadNoStarvation(t *testing.T) {
	t.Parallel()
	s := newSystem(t, overloadKind)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r := s.startRefresher("REFRESH_CONCURRENCY=20", "HTTP_ADDR="+addr)
	sc := s.startScanner()

	var firstAtRisk time.Time
	watched := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if v, ok := gauge(t, addr, `token_refresher_at_risk_connections{integration_type="16",provider="ajio"}`); ok && v > 0 {
				firstAtRisk = time.Now()
				return
			}
		}
	}()

	const waiting, lapsed = 100000, 100001
	start := time.Now().UTC()
	b := backlog{users: map[int64]string{}, expiry: map[int64]time.Time{}, urgent: map[int64]bool{}}
	add := func(id int64, exp time.Time, urgent bool) {
		exp = exp.Truncate(time.Second)
		u, p := seller(fmt.Sprintf("f%d-%s", id, s.env.Queue))
		b.users[id], b.expiry[id], b.urgent[id] = u, exp, urgent
		s.env.Insert(t, testenv.Row{ID: id, IntegrationType: overloadKind.IntegrationType, InputFields: creds(u, p),
			ExpiresAt: &exp, AccessToken: testenv.Str(fmt.Sprintf("old-%d", id))})
	}
	add(waiting, start.Add(14*time.Second), true)
	add(lapsed, start.Add(-time.Hour), false)
	tick := time.NewTicker(time.Second / 12)
	for id := int64(1); time.Since(start) < 20*time.Second; id++ {
		<-tick.C
		add(id, time.Now().Add(8*time.Second), false)
	}
	tick.Stop()

	eventually(t, 60*time.Second, "the lapsed connection refreshed once the stream ends", func() bool {
		at, _ := s.servedAt(backlog{users: map[int64]string{lapsed: b.users[lapsed]}})
		return !at[lapsed].IsZero()
	})
	close(stopWatch)
	<-watched
	at, _ := s.servedAt(b)
	served, ok := at[waiting]
	require.True(t, ok, "the connection due first is refreshed")
	// The first lapse: the earliest expiry of a stream connection not
	// refreshed before it.
	var firstLapse time.Time
	for id, exp := range b.expiry {
		if id == waiting || id == lapsed {
			continue
		}
		if got, ok := at[id]; (!ok || !got.Before(exp)) && (firstLapse.IsZero() || exp.Before(firstLapse)) {
			firstLapse = exp
		}
	}
	st := s.market.stats()
	figure(t, "edf stream=12/s for 20s rate=10/s waiting_slack=%s stream_connections=%d served=%d peak_per_second=%d at_risk_warned_before_first_lapse=%s",
		b.expiry[waiting].Sub(served).Round(100*time.Millisecond), len(b.users)-2, len(at), st.PeakPerSecond, firstLapse.Sub(firstAtRisk).Round(100*time.Millisecond))
	require.False(t, firstLapse.IsZero(), "the stream is more than the rate serves: some of it lapses")
	require.False(t, firstAtRisk.IsZero(), "token_refresher_at_risk_connections rose above 0")
	assert.True(t, firstAtRisk.Before(firstLapse), "the gauge warned (%s) before the first lapse (%s)", firstAtRisk, firstLapse)
	assert.True(t, served.Before(b.expiry[waiting]), "the connection due first is refreshed before it expires (at %s, expiry %s)", served, b.expiry[waiting])
	assert.LessOrEqual(t, st.PeakPerSecond, 10, "the rate limit holds")
	assert.True(t, r.running() && sc.running())
}

// TestOverloadLapsedBacklogUsesTheRate — pass condition: a backlog of
// lapsed tokens only (a first deploy over a fleet of expired tokens) is
// served at the rate limit: the order never leaves a slot unused while
// work waits. Tasks put back for their turn come back in time for it, and
// a free slot nobody ahead is there to take is taken. (Before: the entries
// of tasks put back for long expired before they came back, and the
// marketplace was called at 15–20% of its limit.)
func TestOverloadLapsedBacklogUsesTheRate(t *testing.T) {
	t.Parallel()
	// One call a second: the window holds one or two places, so a head
	// away from its place shows at once; 40 connections put tasks back for
	// up to 44 s, long enough for the old deferral jitter (a quarter of the
	// wait) to outlast the backlog's grace.
	slow := overloadKind
	slow.RatePerSecond = 1
	s := newSystem(t, slow)
	b := s.seedBacklog(1, 0, 40, 0, 0, -2*time.Hour, -time.Hour)
	s.scanOnce()
	r := s.startRefresher("REFRESH_CONCURRENCY=20")
	eventually(t, 120*time.Second, "every connection refreshed", func() bool {
		at, _ := s.servedAt(b)
		return len(at) == len(b.users)
	})
	at, issued := s.servedAt(b)
	times := make([]time.Time, 0, len(at))
	for _, x := range at {
		times = append(times, x)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	var gap time.Duration
	for i := 1; i < len(times); i++ {
		gap = max(gap, times[i].Sub(times[i-1]))
	}
	span := times[len(times)-1].Sub(times[0])
	st := s.market.stats()
	figure(t, "edf lapsed_only backlog=%d rate=1/s workers=20 calls_per_second=%.1f largest_gap=%s peak_per_second=%d",
		len(times), float64(len(times)-1)/span.Seconds(), gap.Round(10*time.Millisecond), st.PeakPerSecond)
	// One slot is 1.1 s at 1/s (with the limiter's headroom): a gap of
	// several is slots left unused while work waited.
	assert.Less(t, gap, 4*time.Second, "no stretch of unused slots while the backlog waits")
	assert.LessOrEqual(t, st.PeakPerSecond, 1, "the rate limit holds")
	for id := range b.users {
		assert.Equal(t, 1, issued[id], "connection %d gets one token", id)
	}
	assert.True(t, r.running())
}
