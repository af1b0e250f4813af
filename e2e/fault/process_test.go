package fault

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func mysqlAddr(t testing.TB) string {
	t.Helper()
	cfg, err := driver.ParseDSN(testenv.MySQLDSN())
	require.NoError(t, err)
	return cfg.Addr
}

func (s *system) queueInfo() *asynq.QueueInfo {
	s.t.Helper()
	info, err := asynq.NewInspectorFromRedisClient(s.env.Redis).GetQueueInfo(s.env.Queue)
	if err != nil {
		return &asynq.QueueInfo{}
	}
	return info
}

// TestRefresherKilledMidRefresh — pass condition: a refresher SIGKILLed
// before its marketplace call, and another SIGKILLed after the call but
// before the write, lose nothing: every one of the connections ends with a
// token issued to its own seller (written by the killed worker's in-flight
// UPDATE, or by the next worker), and no row ends with a wrong or empty token
// (a token that was issued but never written is simply never used).
func TestRefresherKilledMidRefresh(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	proxy := newDBProxy(t, mysqlAddr(t))
	s.ieDSN = proxy.DSN(t, s.env.IEDSN)

	// 1. Killed before the call: the refresher's database stalls while it
	// loads the connections, so no call has been made when it dies.
	before := s.conns(1, 5, "16")
	r1 := s.startRefresher()
	proxy.Stall()
	s.scanOnce()
	eventually(t, 30*time.Second, "the first refresher to take the five tasks", func() bool { return s.queueInfo().Active == 5 })
	r1.kill()
	killedFirst := time.Now()
	require.Zero(t, s.market.stats().Calls, "killed before any marketplace call")
	proxy.Open()

	// 2. Killed after the call, before the write: the calls are slow (3s,
	// time enough to stall the database after seeing them in flight); once
	// all five are in flight the database stalls, the marketplace issues
	// the tokens, and the refresher dies while it tries to store them.
	s.market.setFaults(sandbox.Faults{Latency: 3 * time.Second})
	after := s.conns(101, 5, "16")
	r2 := s.startRefresher()
	s.scanOnce()
	eventually(t, 30*time.Second, "five calls in flight", func() bool { return s.market.stats().InFlight == 5 })
	proxy.Stall()
	eventually(t, 30*time.Second, "the five tokens to be issued", func() bool { return s.market.stats().Issued == 5 })
	r2.kill()
	killedSecond := time.Now()
	for id := range after {
		assert.Equal(t, fmt.Sprintf("old-%d", id), *s.rows()[id].AccessToken, "connection %d: nothing written yet", id)
	}
	proxy.Open()
	s.market.setFaults(sandbox.Faults{})

	// The next worker: asynq hands a dead worker's tasks to another once
	// their lease has run out (30s lease + 30s margin, checked every minute).
	s.startRefresher()
	s.startScanner()
	all := map[int64]string{}
	for id, u := range before {
		all[id] = u
	}
	for id, u := range after {
		all[id] = u
	}
	eventually(t, 4*time.Minute, "all ten connections to be refreshed", func() bool { return s.refreshed(all) == len(all) })
	healed := time.Now()
	s.requireTokens(all)
	calls := s.market.calls()
	for id, u := range before {
		assert.Equal(t, 1, calls[u], "connection %d: one call, by the next worker", id)
	}
	for id, u := range after {
		// The killed worker's UPDATE may already sit in the stalled proxy
		// (one packet with interpolated arguments) and land when the
		// database answers again, as a write in flight on a real network
		// would: then that token is stored (guarded) and the next worker
		// finds the connection fresh. Either way nothing is lost and no
		// third call is made.
		assert.Contains(t, []int{1, 2}, calls[u], "connection %d: the first call, and the next worker's only if the first token was lost", id)
	}
	st := s.market.stats()
	figure(t, "connections=%d calls=%d issued=%d lapses_after_heal=0 heal_after_first_kill=%s heal_after_second_kill=%s",
		len(all), st.Calls, st.Issued, healed.Sub(killedFirst).Round(time.Second), healed.Sub(killedSecond).Round(time.Second))
}

// TestGracefulShutdown — pass condition: on SIGTERM the refresher lets its
// in-flight refreshes finish within DRAIN_TIMEOUT and exits 0; the tasks it
// had not started stay queued; refreshes still running when the drain
// timeout ends go back to the queue; nothing is lost.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		drain    time.Duration
		latency  time.Duration
		finished int // of the four in flight
	}{
		{"in-flight refreshes finish", 15 * time.Second, 2 * time.Second, 4},
		{"past the drain timeout they go back to the queue", time.Second, 8 * time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSystem(t)
			users := s.conns(1, 12, "16")
			r := s.startRefresher("REFRESH_CONCURRENCY=4", "DRAIN_TIMEOUT="+tc.drain.String())
			s.market.setFaults(sandbox.Faults{Latency: tc.latency})
			s.scanOnce()
			eventually(t, 30*time.Second, "four calls in flight", func() bool { return s.market.stats().InFlight == 4 })

			r.signal(syscall.SIGTERM)
			termAt := time.Now()
			require.Equal(t, 0, r.exit(tc.drain+30*time.Second), "a drained refresher exits 0")
			took := time.Since(termAt)
			assert.Contains(t, r.out.String(), "draining")
			assert.Equal(t, tc.finished, s.refreshed(users), "refreshes finished during the drain")
			info := s.queueInfo()
			assert.Zero(t, info.Active, "nothing left running")
			assert.Equal(t, 12-tc.finished, info.Pending, "the rest are back in the queue, ready")
			if tc.finished == 0 {
				assert.Less(t, took, tc.latency, "the drain does not wait for calls past DRAIN_TIMEOUT")
			}

			s.market.setFaults(sandbox.Faults{})
			s.startRefresher()
			eventually(t, 60*time.Second, "the next refresher to finish the rest", func() bool { return s.refreshed(users) == 12 })
			s.requireTokens(users)
			st := s.market.stats()
			assert.Equal(t, 12, st.Issued, "one token per connection: an interrupted call issued none")
			figure(t, "connections=12 in_flight_at_sigterm=4 finished_in_drain=%d requeued=%d exit_after=%s calls=%d issued=%d",
				tc.finished, 12-tc.finished, took.Round(100*time.Millisecond), st.Calls, st.Issued)
		})
	}
}

// TestMySQLUnreachableDuringWrite — pass condition: when the database
// becomes unreachable between the marketplace call and the write, the token
// obtained is kept in the outbox at once (this process's memory: no
// OUTBOX_KEY) and the keeper stores it when the database is back; the token
// obtained is the one stored: one call per connection, nothing lost.
func TestMySQLUnreachableDuringWrite(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	proxy := newDBProxy(t, mysqlAddr(t))
	s.ieDSN = proxy.DSN(t, s.env.IEDSN)
	users := s.conns(1, 10, "16")
	r := s.startRefresher()
	// 3s calls: time enough to cut the database after seeing them in flight.
	s.market.setFaults(sandbox.Faults{Latency: 3 * time.Second})
	s.scanOnce()

	eventually(t, 30*time.Second, "ten calls in flight", func() bool { return s.market.stats().InFlight == 10 })
	proxy.Cut()
	cutAt := time.Now()
	eventually(t, 30*time.Second, "the ten tokens to be issued", func() bool { return s.market.stats().Issued == 10 })
	eventually(t, 30*time.Second, "the ten tokens to be kept in the outbox", func() bool {
		return r.count("it is kept in the outbox") == 10
	})
	keptAfter := time.Since(cutAt)
	for id := range users {
		assert.Equal(t, fmt.Sprintf("old-%d", id), *s.rows()[id].AccessToken)
	}
	assert.Zero(t, r.count(`"msg":"kept token stored"`), "nothing stored while the database is unreachable")
	proxy.Open()
	openAt := time.Now()
	eventually(t, 60*time.Second, "the kept tokens to be stored", func() bool { return s.refreshed(users) == 10 })
	healed := time.Now()
	s.requireTokens(users)
	for id, u := range users {
		assert.Equal(t, 1, s.market.calls()[u], "connection %d: one call; the token was kept, not the call repeated", id)
	}
	st := s.market.stats()
	assert.Equal(t, 10, st.Issued)
	// The keeper logs each token right after the row has it.
	eventually(t, 10*time.Second, "the keeper to log the ten tokens stored", func() bool {
		return r.count(`"msg":"kept token stored"`) >= 10
	})
	assert.Equal(t, 10, r.count(`"msg":"kept token stored"`), "the keeper stored each kept token once")
	assert.Zero(t, r.count(`"outcome":"permanent"`), "no false permanent failure")
	figure(t, "connections=10 calls=%d issued=%d kept=%d kept_after_cut=%s stored=%d outage=%s heal_after_db_back=%s",
		st.Calls, st.Issued, r.count("it is kept in the outbox"), keptAfter.Round(100*time.Millisecond),
		r.count(`"msg":"kept token stored"`), openAt.Sub(cutAt).Round(100*time.Millisecond),
		healed.Sub(openAt).Round(100*time.Millisecond))
}
