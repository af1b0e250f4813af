package fault

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestSoakLong — pass condition: for ten minutes (SOAK_LONG_DURATION), three
// refreshers and two scanners keep 300 connections over the soak's
// providers refreshed while 20% of marketplace calls fail, and, one after
// the other (each over before the next starts):
//   - at 0.2 of the run, Redis (behind Sentinel) fails over;
//   - at 0.4, the database stops answering for 20 s (a proxy holds every
//     byte, nothing is closed);
//   - at 0.6, the primary turns read-only for 30 s (a maintenance window);
//   - at 0.85, the primary A is failed over to its replica B (A read-only, B
//     promoted) and the name the processes connect to moves to B, while
//     their pooled connections stay on A.
//
// The database is a private pair (testenv.StartMariaDB: A replicated by B),
// never the shared server, whose global settings no test may change. The
// processes connect as its app user (no SUPER), whose writes read_only
// refuses, through the stalling proxy (the blackhole) and then a
// switchable one (the failover's moving name); the test seeds through root
// on A and reads through root on the switchable proxy, so it reads the
// current primary (A, then B).
//
// Tokens live 3 minutes; the seeded ones are renewed 2 minutes before they
// expire, the later ones a minute before (a third of their lifetime,
// token.Lead): a generation every two minutes. The lead covers each fault
// (a task in flight at the Redis kill may wait for asynq's recoverer, see
// TestRedisFailover) and the retries of a flaky marketplace, so:
//   - no sampled token ever lapses, and none is lost (every connection ends
//     with a live token issued to it);
//   - no connection gets a second token in one generation;
//   - no marketplace call starts while the database refuses writes;
//   - tokens are written on B after the failover;
//   - every process runs to the end without a restart.
//
// It reports calls per generation and the recovery times. It runs only
// under `make soak-long` (SOAK_LONG=1): ten minutes is too long for make test.
func TestSoakLong(t *testing.T) {
	if os.Getenv("SOAK_LONG") == "" {
		t.Skip("the long soak runs with make soak-long (SOAK_LONG=1)")
	}
	duration := 10 * time.Minute
	if v := os.Getenv("SOAK_LONG_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "SOAK_LONG_DURATION")
		duration = d
	}
	const (
		n         = 300
		ttl       = 3 * time.Minute
		before    = 2 * time.Minute
		limit     = 20
		blackhole = 20 * time.Second
		readOnly  = 30 * time.Second
		// claimSettle: see the count of calls during the read-only window.
		claimSettle = time.Second
	)
	top := startTopology(t)
	var kinds []kind
	for _, k := range soakKinds {
		k.kind.TokenTTL, k.kind.RefreshBefore, k.kind.Timeout, k.kind.RatePerSecond = ttl, before, time.Second, limit
		kinds = append(kinds, k.kind)
	}

	// The private pair: B replicates A before the schema exists, so the
	// databases, the seed and every write reach B through the binary log.
	a := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 1, Binlog: true})
	b := testenv.StartMariaDB(t, testenv.MariaDBOptions{ServerID: 2, Binlog: true})
	b.ReplicateFrom(t, a)
	// The name the processes connect to (a DNS name, a VIP): it points at
	// A, and at B after the failover. In front of it, the stalling proxy.
	name := testenv.NewProxy(t, a.Addr())
	s := newPrivateSystem(t, a, kinds...)
	s.redisURL = top.URL()
	proxy := newDBProxy(t, name.Addr())
	s.ieDSN = proxy.DSN(t, s.env.IEDSN)
	viaProxy := []string{"WMS_DB_DSN=" + proxy.DSN(t, s.env.WMSDSN), "IE_DB_DSN=" + s.ieDSN}

	now := time.Now().UTC()
	users := make(map[int64]string, n)
	var rows []testenv.Row
	for i := range n {
		k := soakKinds[i%len(soakKinds)]
		expires := now.Add(before + time.Second + time.Duration(rand.Int64N(int64(ttl-before))))
		r, u := k.row(int64(i+1), expires, s.env.Queue)
		r.IntegrationType = k.kind.IntegrationType
		rows = append(rows, r)
		users[r.ID] = u
	}
	// Seeded through root on A (s.env's pools are newPrivateSystem's).
	s.env.Insert(t, rows...)
	// From now on the test reads (s.watch, s.rows, s.refreshed,
	// s.requireTokens: s.env.IE) through the name, as root, on a pool that
	// keeps no idle connection: each read opens a connection, which goes
	// to the current primary (a pooled one would stay on A after the
	// failover). It bypasses the stalling proxy, as the shared server's
	// pool did: the watcher samples through the blackhole.
	onA := s.env.IE
	s.env.IE = sqlx.MustOpen("mysql", name.DSN(t, a.RootDSN(s.env.IEDB)))
	s.env.IE.SetMaxIdleConns(0)
	onA.Close() // newPrivateSystem's cleanup closes s.env.IE, the new pool
	onB := sqlx.MustOpen("mysql", b.RootDSN(s.env.IEDB))
	t.Cleanup(func() { onB.Close() })

	f := faults(shares{hang: 0.02, slow: 0.02, tooMany: 0.06, errors: 0.06, html: 0.02, garbage: 0.02}, 1)
	f.OAuthExpiresIn, f.Rotate, f.RotationGrace = int(ttl/time.Second), true, 2*ttl
	s.market.setFaults(f)

	w := s.watch(users, before)
	var procs []*proc
	outboxKey := outbox.GenerateKey()
	for range 3 {
		// As deployed: one OUTBOX_KEY for every replica, so a token kept
		// by one is stored by any.
		procs = append(procs, s.startRefresher(append(viaProxy, "REFRESH_CONCURRENCY=20", "OUTBOX_KEY="+outboxKey)...))
	}
	refreshers := procs[:3:3]
	scanAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	procs = append(procs, s.startScanner(append(viaProxy, "HTTP_ADDR="+scanAddr)...), s.startScanner(viaProxy...))
	ready := pollReady(scanAddr)

	start := time.Now()
	at := func(frac float64) { time.Sleep(time.Until(start.Add(time.Duration(frac * float64(duration))))) }
	// next waits for the fault at frac; the previous one, what, must be
	// over by then (ended: when it was).
	next := func(frac float64, what string, ended time.Time) {
		t.Helper()
		due := start.Add(time.Duration(frac * float64(duration)))
		assert.True(t, ended.Before(due), "%s is over (%s after the start) before the next fault (%s)",
			what, ended.Sub(start).Round(100*time.Millisecond), due.Sub(start).Round(100*time.Millisecond))
		at(frac)
	}

	// At 3m the tasks the Redis failover strands (in flight at the kill,
	// back with asynq's recoverer 60-90s later) come back during the
	// read-only window, which holds them until it ends: closest_to_expiry
	// is then the two faults' sum (10-15s left in our runs), not the
	// window's alone. At 10m each fault's aftermath is over long before
	// the next.
	at(0.2)
	killed, promoted := top.failover(nil)
	top.rejoin()
	rejoined := time.Now()

	next(0.4, "the Redis failover", rejoined)
	proxy.Stall()
	stalled := time.Now()
	time.Sleep(blackhole)
	proxy.Open()
	opened := time.Now()

	// The read-only window, and how its calls are counted. The sandbox
	// counts a call when it starts (Stats.Calls; one per refresh, faulted
	// or not), so a call in flight when the window opens was counted
	// before it, and a retry, being a new call, is counted when it starts.
	// Every call is preceded by its own claim (mysql.Store.Claim, a
	// guarded UPDATE of the row: the product's only call site,
	// refresh.Handler.refresh, makes one call per claim; a retry is a new
	// task run with a new claim; Go's HTTP client replays no POST), and
	// read_only refuses the claim. So the only call that may start once
	// read_only is on is one whose claim committed just before (SET GLOBAL
	// read_only waits for the writes in progress) and whose request
	// reaches the sandbox a moment later: the claim-to-call step is a few
	// milliseconds of the refresher's own work. The calls started during
	// the window (readonly_calls, asserted 0) are therefore counted from
	// claimSettle after read_only is on until just before it is turned
	// off; those of the first claimSettle are reported apart
	// (readonly_calls_claimed_before). The tokens of the calls in flight
	// at the start are kept (readonly_kept) and stored once it ends.
	next(0.6, "the database blackhole", opened)
	keptBefore, gateClosedBefore := countLines(refreshers, logKept), linesEach(refreshers, logGateClosed)
	a.SetReadOnly(t, true)
	readOnlyAt := time.Now()
	callsAtReadOnly := s.market.stats().Calls
	time.Sleep(time.Until(readOnlyAt.Add(claimSettle)))
	callsSettled := s.market.stats().Calls
	time.Sleep(time.Until(readOnlyAt.Add(readOnly)))
	callsAtWritable := s.market.stats().Calls
	keptInWindow := countLines(refreshers, logKept) - keptBefore
	gateClosedInWindow := linesEach(refreshers, logGateClosed)
	a.SetReadOnly(t, false)
	writableAt := time.Now()

	// The failover: A read-only, B caught up and promoted, A a replica of
	// B; then the name moves to B. The tokens B holds once promoted are
	// A's last; the first one that differs is the first write on B.
	// At 0.85, not 0.8: at ten minutes the window delays a batch of
	// refreshes by up to 30s, so the next batch comes due about 505s in;
	// a failover at 480s met no work at all (db_failover_due=0).
	next(0.85, "the read-only window", writableAt)
	failoverAt := time.Now()
	testenv.Failover(t, a, b)
	onBAtPromotion := tokensOf(t, onB)
	name.Switch(b.Addr())
	switchedAt := time.Now()
	// How much work the failover meets: the connections due then, or
	// within the jitter that may run them early (less than the lead plus
	// token.Spread left). With none, the first write on B waits for the
	// next one to come due: the figure is then no recovery time.
	lead := token.Lead(before, ttl)
	dueAtFailover := 0
	for _, r := range fullRows(t, onB) {
		if r.ExpiresAt != nil && r.ExpiresAt.Before(switchedAt.Add(lead+token.Spread(lead))) {
			dueAtFailover++
		}
	}
	var firstOnB time.Time
	eventually(t, 30*time.Second, "a token written on B after the failover", func() bool {
		for id, tok := range tokensOf(t, onB) {
			if tok != onBAtPromotion[id] {
				firstOnB = time.Now()
				return true
			}
		}
		return false
	})
	next(1, "the database failover", firstOnB)

	w.end()
	ready.end()
	st := s.market.stats()
	s.market.setFaults(sandbox.Faults{OAuthExpiresIn: int(ttl / time.Second), Rotate: true, RotationGrace: 2 * ttl})
	stored := 0
	for _, c := range w.stored {
		stored += c
	}
	require.Positive(t, stored)
	// Lost: a connection not holding a live token issued to it at the end.
	lost := n - s.refreshed(users)
	failoverRefresh := firstRefreshAfter(killed, refreshers...)
	blackholeRefresh := firstRefreshAfter(opened, refreshers...)
	// Refreshes that finished while the database was silent: none can
	// write, so the first one after the stall began finishes once it ends.
	stallRefresh := firstRefreshAfter(stalled.Add(time.Second), refreshers...)
	readOnlyStored := firstRefreshAfter(writableAt, refreshers...)
	fromKill, _ := ready.since(killed)
	fromRejoin, _ := ready.since(rejoined)
	fromStall, lastOK := ready.since(stalled)
	fromReadOnly, _ := ready.since(readOnlyAt)
	assert.True(t, lastOK, "/readyz ends ready")
	readOnlyCalls := callsAtWritable - callsSettled
	figure(t, "duration=%s connections=%d kinds=%d refreshers=3 scanners=2 faults=20%% ttl=%s before=%s samples=%d lapses=%d tokens_lost=%d early_replacements=%d "+
		"tokens_stored=%d calls=%d faulted=%d issued=%d calls_per_generation=%.2f peak_per_second=%d "+
		"failover_kill_to_promotion=%s failover_kill_to_first_refresh=%s old_master_rejoined_after=%s "+
		"blackhole=%s blackhole_start_to_first_refresh=%s blackhole_end_to_first_refresh=%s readyz_503_failover=%d readyz_503_blackhole=%d "+
		"readonly=%s readonly_calls=%d readonly_calls_claimed_before=%d readonly_kept=%d readonly_end_to_first_stored=%s "+
		"db_failover_took=%s db_failover_due=%d db_failover_to_first_write_on_B=%s db_sample_errors=%d closest_to_expiry=%s",
		duration, n, len(soakKinds), ttl, before, w.samples, w.lapses, lost, len(w.early),
		stored, st.Calls, st.Faulted, st.Issued, float64(st.Calls)/float64(stored), st.PeakPerSecond,
		promoted.Sub(killed).Round(100*time.Millisecond), failoverRefresh.Sub(killed).Round(100*time.Millisecond),
		rejoined.Sub(killed).Round(100*time.Millisecond),
		opened.Sub(stalled).Round(100*time.Millisecond), stallRefresh.Sub(stalled).Round(100*time.Millisecond), blackholeRefresh.Sub(opened).Round(100*time.Millisecond),
		fromKill-fromRejoin, fromStall-fromReadOnly,
		readOnly, readOnlyCalls, callsSettled-callsAtReadOnly, keptInWindow, readOnlyStored.Sub(writableAt).Round(100*time.Millisecond),
		switchedAt.Sub(failoverAt).Round(10*time.Millisecond), dueAtFailover, firstOnB.Sub(switchedAt).Round(100*time.Millisecond),
		w.errs, w.closest.Round(100*time.Millisecond))
	eventually(t, 2*time.Minute, "every connection to hold a token the sandbox issued", func() bool {
		return s.refreshed(users) == n
	})
	s.requireTokens(users)

	if !assert.Zero(t, w.lapses, "no token lapsed while the marketplace was up: %v", w.lapsed) {
		shown := 0
		for id, when := range w.lapsed {
			if shown++; shown > 3 {
				break
			}
			t.Logf("connection %d lapsed (last seen %s after the start)", id, when.Sub(start).Round(time.Second))
			for _, p := range procs {
				t.Logf("%s on connection %d:\n%s", p.name, id, strings.Join(p.linesWith(fmt.Sprintf(`"connection_id":%d,`, id)), "\n"))
			}
		}
	}
	assert.Empty(t, w.early, "no second token for one generation")
	assert.Zero(t, readOnlyCalls, "no marketplace call started while the database was read-only")
	for i, r := range refreshers {
		// The window refused their writes (the app user has no SUPER):
		// each refresher's gate closed in it.
		assert.Greater(t, gateClosedInWindow[i], gateClosedBefore[i], "%s %d found the database refusing writes in the read-only window", r.name, i+1)
	}
	assert.False(t, readOnlyStored.IsZero(), "a token was stored after the read-only window")
	for _, p := range procs {
		assert.True(t, p.running(), "%s kept running", p.name)
	}
}

// countLines is how many output lines of ps hold substr.
func countLines(ps []*proc, substr string) int {
	n := 0
	for _, p := range ps {
		n += p.count(substr)
	}
	return n
}

// linesEach is how many output lines of each of ps hold substr.
func linesEach(ps []*proc, substr string) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.count(substr)
	}
	return out
}

// tokensOf is every connection's access token as db holds it.
func tokensOf(t testing.TB, db *sqlx.DB) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for id, r := range fullRows(t, db) {
		if r.AccessToken != nil {
			out[id] = *r.AccessToken
		}
	}
	return out
}
