package fault

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"encoding/json"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// watch samples every connection's stored token every 250ms until stopped.
// It counts lapses (a missing or expired token) and token changes, and
// flags a change that replaced a token which was not yet due: a second
// token stored for one generation.
type watch struct {
	mu      sync.Mutex
	samples int
	lapses  int
	lapsed  map[int64]time.Time
	early   map[int64]string // connection → what was replaced too early
	stored  map[int64]int    // tokens stored after the first sample
	changed map[int64]time.Time
	errs    int
	closest time.Duration // least lifetime a replaced token had left
	stop    chan struct{}
	done    chan struct{}
}

func (s *system) watch(ids map[int64]string, before time.Duration) *watch {
	w := &watch{closest: time.Hour, lapsed: map[int64]time.Time{}, early: map[int64]string{}, stored: map[int64]int{},
		changed: map[int64]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	type last struct {
		token   string
		expires time.Time
	}
	prev := map[int64]last{}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			at := time.Now()
			var rs []struct {
				ID          int64          `db:"id"`
				AccessToken sql.NullString `db:"accessToken"`
				ExpiresAt   sql.NullTime   `db:"accessTokenExpiryAt"`
			}
			err := s.env.IE.Select(&rs, `SELECT id, accessToken, accessTokenExpiryAt FROM ie_appinstall_connection`)
			w.mu.Lock()
			if err != nil {
				w.errs++
				w.mu.Unlock()
				continue
			}
			for _, r := range rs {
				if _, ok := ids[r.ID]; !ok {
					continue
				}
				w.samples++
				if !r.AccessToken.Valid || r.AccessToken.String == "" || !r.ExpiresAt.Valid || !r.ExpiresAt.Time.After(at) {
					w.lapses++
					w.lapsed[r.ID] = at
					continue
				}
				p, seen := prev[r.ID]
				if seen && p.token != r.AccessToken.String {
					w.stored[r.ID]++
					w.changed[r.ID] = at
					// The scanner enqueues a connection once its token has
					// less than `before` left (DATETIME keeps whole seconds:
					// one second of slack).
					left := p.expires.Sub(at)
					w.closest = min(w.closest, left)
					if left > before+time.Second {
						w.early[r.ID] = fmt.Sprintf("replaced with %s left", left.Round(100*time.Millisecond))
					}
				}
				prev[r.ID] = last{r.AccessToken.String, r.ExpiresAt.Time}
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watch) end() {
	close(w.stop)
	<-w.done
}

// dueNow moves the stored expiry of ids to left from now, inside the refresh
// window, as the next generation coming due would (the token is kept).
func dueNow(t testing.TB, s *system, ids []int64, left time.Duration) {
	t.Helper()
	q, args, err := sqlx.In(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id IN (?)`,
		time.Now().UTC().Add(left).Truncate(time.Second), ids)
	require.NoError(t, err)
	_, err = s.env.IE.Exec(q, args...)
	require.NoError(t, err)
}

// changedAfter reports whether every one of ids got a new token after at.
func (w *watch) changedAfter(ids []int64, at time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		if !w.changed[id].After(at) {
			return false
		}
	}
	return true
}

// readiness polls a /readyz every 100ms and keeps what it answered.
type readiness struct {
	mu       sync.Mutex
	answers  []int // status codes; 0: no answer
	at       []time.Time
	stop     chan struct{}
	finished chan struct{}
}

func pollReady(addr string) *readiness {
	r := &readiness{stop: make(chan struct{}), finished: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Second} // /readyz gives its checks 3s
	go func() {
		defer close(r.finished)
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			code := 0
			if resp, err := c.Get("http://" + addr + "/readyz"); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
			r.mu.Lock()
			r.answers = append(r.answers, code)
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *readiness) end() { close(r.stop); <-r.finished }

// since returns how many answers after t said 503 (not ready; a missing
// answer does not count), and whether the last one was 200.
func (r *readiness) since(t time.Time) (notReady int, lastOK bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, at := range r.at {
		if at.After(t) && r.answers[i] == http.StatusServiceUnavailable {
			notReady++
		}
	}
	return notReady, len(r.answers) > 0 && r.answers[len(r.answers)-1] == http.StatusOK
}

// firstRefreshAfter is the time of the first token one of ps stored after
// t, as logged: a "refresh done" with outcome refreshed, or a "kept token
// stored" (the zero time if none).
func firstRefreshAfter(t time.Time, ps ...*proc) time.Time {
	var first time.Time
	for _, p := range ps {
		sc := bufio.NewScanner(strings.NewReader(p.out.String()))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct {
				Msg     string `json:"msg"`
				Outcome string `json:"outcome"`
				Time    string `json:"time"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || !(l.Msg == "refresh done" && l.Outcome == "refreshed" || l.Msg == "kept token stored") {
				continue
			}
			at, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.Time)
			if err != nil || !at.After(t) {
				continue
			}
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
	}
	return first
}

// seedFailoverSellers inserts n Ajio connections (type 16) whose first
// generation comes due within 20s of now (expiry before + 1..21s); the
// next ones the failover tests bring due themselves (dueNow), so they stay
// short. It returns each connection's seller and the ids.
func seedFailoverSellers(t testing.TB, s *system, n int, now time.Time, before time.Duration) (map[int64]string, []int64) {
	t.Helper()
	users := make(map[int64]string, n)
	var rows []testenv.Row
	for i := range n {
		expires := now.Add(before + time.Second + time.Duration(rand.Int64N(int64(20*time.Second))))
		r, u := sellerRow(int64(i+1), expires, s.env.Queue)
		r.IntegrationType = "16"
		rows = append(rows, r)
		users[r.ID] = u
	}
	s.env.Insert(t, rows...)
	ids := make([]int64, 0, n)
	for id := range users {
		ids = append(ids, id)
	}
	return users, ids
}

// pendingIDs are the task ids in the queue's pending list on one node.
func (top *topology) pendingIDs(n *redisNode, queue string) []string {
	c := top.client(n)
	defer c.Close()
	ids, _ := c.LRange(context.Background(), "asynq:{"+queue+"}:pending", 0, -1).Result()
	return ids
}

// TestRedisFailover — pass condition: with Redis behind Sentinel (a master
// and a replica with requirepass, three sentinels with a password of their
// own; REDIS_URL in the documented redis-sentinel form), two refreshers and
// a scanner refresh 2-minute tokens while the master is SIGKILLed, the
// sentinels promote the replica and the old master comes back as a replica.
// The marketplace is up throughout, so:
//   - no sampled token ever lapses;
//   - no connection gets a second token in one generation, and every
//     marketplace call's token is stored (calls = stored tokens);
//   - the tasks the old master held but never replicated (replication is
//     asynchronous) are gone from the new master, and the scanner recreates
//     them from MySQL: those connections are refreshed after the kill;
//   - the processes run on without a restart, and refresh every connection
//     again after the old master has rejoined;
//   - the scanner's /readyz answers 503 during the outage, and both
//     /readyz answer 200 after; the refresher's embedded dashboard
//     (asynqmon on the same failover client) lists the queue after it;
//   - no password of the URL reaches a log line.
//
// To make "acknowledged but not replicated" certain rather than a matter of
// luck, the replica's link is held just before the kill, and the refreshers
// are paused (SIGSTOP) meanwhile so the scanner's new tasks wait in the
// master's pending list; they resume (SIGCONT) right after the kill.
func TestRedisFailover(t *testing.T) {
	t.Parallel()
	const (
		n = 60
		// A task in flight at the kill can be left active, with no worker,
		// on the new master until asynq's recoverer requeues it: its lease
		// (30s) plus up to a minute between sweeps, ~90s. The refresh window
		// must exceed that (docs/reliability.md). Tokens are refreshed on
		// their own clock, refresh_before capped at a third of the lifetime
		// (token.Lead): 300s tokens keep the whole 95s window.
		ttl    = 300 * time.Second
		before = 95 * time.Second
	)
	top := startTopology(t)
	s := newSystem(t, kind{IntegrationType: "16", Kind: "ajio", TokenTTL: ttl, RefreshBefore: before, Timeout: time.Second})
	s.redisURL = top.URL()
	now := time.Now().UTC()
	users, ids := seedFailoverSellers(t, s, n, now, before)

	w := s.watch(users, before)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r1 := s.startRefresher("HTTP_ADDR="+httpAddr, "DASHBOARD_USER=ops", "DASHBOARD_PASSWORD=dash-pw-1234")
	r2 := s.startRefresher()
	scanAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sc := s.startScanner("HTTP_ADDR=" + scanAddr)
	ready, scanReady := pollReady(httpAddr), pollReady(scanAddr)

	// A whole generation before the failover.
	start := time.Now()
	eventually(t, 60*time.Second, "every connection refreshed once", func() bool { return w.changedAfter(ids, start) })

	// lost: tasks pending on the master that the replica (its link held,
	// so frozen) does not have; they vanish with the master.
	var lost []int64
	var atKill int
	_, enqueuedBefore, _, _ := scanTotals(sc)
	killed, promoted := top.failover(func() {
		r1.signal(syscall.SIGSTOP)
		r2.signal(syscall.SIGSTOP)
		// A third of the connections come due (5s inside the window): the
		// scanner queues them on the master while the workers are paused.
		dueNow(t, s, ids[:n/3], before-5*time.Second)
		rc := top.client(top.replica)
		defer rc.Close()
		eventually(t, 30*time.Second, "tasks on the master only", func() bool {
			lost = nil
			pending := top.pendingIDs(top.master, s.env.Queue)
			atKill = len(pending)
			for _, id := range pending {
				if n, err := rc.Exists(context.Background(), "asynq:{"+s.env.Queue+"}:t:"+id).Result(); err == nil && n == 0 {
					conn, ok := task.ConnectionID(id)
					require.True(t, ok, "task id %q", id)
					lost = append(lost, conn)
				}
			}
			return len(lost) >= 3
		})
	})
	r1.signal(syscall.SIGCONT)
	r2.signal(syscall.SIGCONT)

	require.NotEmpty(t, lost, "the master held tasks the replica never got")
	eventually(t, 60*time.Second, "the scanner to recreate the lost tasks and the refreshers to run them", func() bool {
		return w.changedAfter(lost, killed)
	})
	firstAfter := firstRefreshAfter(killed, r1, r2)
	_, enqueuedAfter, _, _ := scanTotals(sc)
	assert.Greater(t, enqueuedAfter, enqueuedBefore, "the scanner enqueued again after the failover")

	top.rejoin()
	rejoined := time.Now()
	dueNow(t, s, ids, before-5*time.Second)
	eventually(t, 60*time.Second, "every connection refreshed after the old master rejoined", func() bool {
		return w.changedAfter(ids, rejoined)
	})
	w.end()
	ready.end()
	scanReady.end()

	assert.Zero(t, w.lapses, "no token lapsed while the marketplace was up: %v", w.lapsed)
	assert.Empty(t, w.early, "no second token for one generation")
	calls := s.market.calls()
	for id, u := range users {
		// The watch saw the first generation's seed token replaced too:
		// every call's token was stored, once.
		assert.Equal(t, calls[u], w.stored[id], "connection %d: marketplace calls = tokens stored", id)
	}
	s.requireTokens(users)
	// The embedded dashboard (asynqmon on the same failover client) follows
	// the new master too.
	req, err := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/monitoring/api/queues", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "dash-pw-1234")
	resp, err := control.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the dashboard answers after the failover")
	assert.Contains(t, string(body), s.env.Queue, "the dashboard lists the queue")
	// The scanner runs through the outage; the refreshers were paused
	// until the kill, so theirs may have answered nothing for part of it.
	notReady, lastOK := scanReady.since(killed)
	assert.Positive(t, notReady, "the scanner's /readyz reported the outage")
	assert.True(t, lastOK, "the scanner's /readyz recovered")
	refresherNotReady, refresherOK := ready.since(killed)
	assert.True(t, refresherOK, "the refresher's /readyz recovered")
	for _, p := range []*proc{r1, r2, sc} {
		assert.True(t, p.running(), "%s kept running", p.name)
		out := p.out.String()
		for _, secret := range []string{masterPassword, url.QueryEscape(masterPassword), sentinelPassword} {
			assert.NotContains(t, out, secret, "%s logs no password", p.name)
		}
	}
	require.False(t, firstAfter.IsZero(), "a refresh after the kill")
	figure(t, "connections=%d ttl=%s before=%s samples=%d lapses=%d early_replacements=%d pending_on_old_master=%d lost_in_failover=%d kill_to_promotion=%s kill_to_first_refresh=%s readyz_503_scanner=%d readyz_503_refresher=%d calls=%d closest_to_expiry=%s",
		n, ttl, before, w.samples, w.lapses, len(w.early), atKill, len(lost), promoted.Sub(killed).Round(100*time.Millisecond),
		firstAfter.Sub(killed).Round(100*time.Millisecond), notReady, refresherNotReady, s.market.stats().Calls, w.closest.Round(100*time.Millisecond))
}
