package fault

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
)

func freePort(t testing.TB) int {
	t.Helper()
	port, err := procs.FreePort()
	require.NoError(t, err)
	return port
}

// startRedis runs a private, empty, memory-only redis-server on port.
func startRedis(t testing.TB, port int) *procs.Redis {
	t.Helper()
	r, err := procs.StartRedis(context.Background(), t.TempDir(), port)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

// TestRedisRestartedEmpty — pass condition: Redis is not the source of
// truth. When it restarts empty while every due connection's task is
// waiting in it, the scanner and refresher keep running, the next scan
// re-creates all due work from MySQL, and every connection is refreshed.
func TestRedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	r1 := startRedis(t, port)
	s := newSystem(t)
	s.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	own := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	t.Cleanup(func() { own.Close() })
	inspector := asynq.NewInspectorFromRedisClient(own)

	users := s.conns(1, 20, "16")
	s.market.setFaults(sandbox.Faults{ErrorRate: 1}) // the marketplace is down: the tasks wait in Redis
	r := s.startRefresher()
	sc := s.startScanner()
	eventually(t, 30*time.Second, "twenty tasks waiting in Redis", func() bool {
		info, err := inspector.GetQueueInfo(s.env.Queue)
		return err == nil && info.Size == 20 && s.market.stats().Calls > 0
	})

	r1.Kill()
	startRedis(t, port)
	restartedAt := time.Now()
	s.market.setFaults(sandbox.Faults{})
	eventually(t, 60*time.Second, "every connection to be refreshed after the restart", func() bool { return s.refreshed(users) == 20 })
	healed := time.Now()
	assert.True(t, r.running(), "the refresher survived the restart")
	assert.True(t, sc.running(), "the scanner survived the restart")
	s.requireTokens(users)
	st := s.market.stats()
	figure(t, "connections=20 tasks_lost=20 calls=%d issued=%d heal_after_restart=%s",
		st.Calls, st.Issued, healed.Sub(restartedAt).Round(100*time.Millisecond))
}

// TestConcurrentScanners — pass condition: with two and with three scanners
// scanning at once, every due connection gets exactly one marketplace call
// per token generation.
func TestConcurrentScanners(t *testing.T) {
	t.Parallel()
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d scanners", n), func(t *testing.T) {
			t.Parallel()
			s := newSystem(t)
			users := s.conns(1, 40, "16")
			// Generation 1: the scanners race to enqueue before any worker
			// runs; generation 2: they scan while the refresher works.
			var scanners []*proc
			for range n {
				scanners = append(scanners, s.launchScanner("SCAN_INTERVAL=200ms"))
			}
			for _, sc := range scanners {
				sc.waitLog(30*time.Second, `"msg":"scanned"`)
			}
			s.startRefresher()
			// a few more scans by every scanner: nothing new may be called
			moreScans := func() {
				t.Helper()
				marks := make([]int, n)
				for i, sc := range scanners {
					marks[i] = sc.count(`"msg":"scanned"`)
				}
				eventually(t, 30*time.Second, "three more scans by every scanner", func() bool {
					for i, sc := range scanners {
						if sc.count(`"msg":"scanned"`) < marks[i]+3 {
							return false
						}
					}
					return true
				})
			}
			for gen := 1; gen <= 2; gen++ {
				start := time.Now()
				eventually(t, 60*time.Second, fmt.Sprintf("generation %d of all 40 tokens", gen), func() bool {
					return s.refreshed(users) == 40 && len(s.market.calls()) == 40 && minCalls(s.market.calls()) >= gen
				})
				took := time.Since(start)
				moreScans()
				for id, u := range users {
					require.Equal(t, gen, s.market.calls()[u], "connection %d: one call per generation", id)
				}
				s.requireTokens(users)
				var scans, enq, already int
				for _, sc := range scanners {
					a, b, c, _ := scanTotals(sc)
					scans, enq, already = scans+a, enq+b, already+c
				}
				assert.Positive(t, already, "the scanners did overlap")
				figure(t, "scanners=%d connections=40 generation=%d calls=%d scans=%d enqueued=%d already_queued=%d refreshed_in=%s",
					n, gen, s.market.stats().Calls, scans, enq, already, took.Round(100*time.Millisecond))
				// the next generation: every token is due again
				s.env.IE.MustExec(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ?`, time.Now().UTC().Add(time.Minute).Truncate(time.Second))
			}
		})
	}
}

func minCalls(calls map[string]int) int {
	m := -1
	for _, c := range calls {
		if m < 0 || c < m {
			m = c
		}
	}
	return m
}

func TestPrivateRedisIsEmpty(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	startRedis(t, port)
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	defer c.Close()
	n, err := c.DBSize(context.Background()).Result()
	require.NoError(t, err)
	assert.Zero(t, n)
}
