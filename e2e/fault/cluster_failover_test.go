package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
)

// pendingPerMaster counts the tasks pending in each of queues (LLEN of
// asynq:{q}:pending through the cluster client) by the address of the
// master serving the queue's slot, and returns the total too.
func pendingPerMaster(t testing.TB, c *cluster, queues []string) (map[string]int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc := c.Client(t)
	out := map[string]int{}
	total := 0
	for _, q := range queues {
		key := "asynq:{" + q + "}:pending"
		n, err := cc.LLen(ctx, key).Result()
		require.NoError(t, err, "LLEN %s", key)
		out[c.MasterOf(key).Addr] += int(n)
		total += int(n)
	}
	return out, total
}

// replicaOf is the replica of master m.
func (c *cluster) replicaOf(ctx context.Context, m node) node {
	c.t.Helper()
	nodes, err := c.nodes(ctx)
	require.NoError(c.t, err, "CLUSTER NODES")
	for _, n := range nodes {
		if n.Master == m.ID {
			return n
		}
	}
	c.t.Fatalf("master %s has no replica: %v", m, nodes)
	return node{}
}

// readOnlyClient is a client of the cluster replica at addr that reads its
// data (READONLY on every connection), closed when t ends.
func readOnlyClient(t testing.TB, addr, password string) *redis.Client {
	rc := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error { return cn.ReadOnly(ctx).Err() }})
	t.Cleanup(func() { rc.Close() })
	return rc
}

// linesAfter are p's JSON log lines holding substr logged after at.
func (p *proc) linesAfter(at time.Time, substr string) []string {
	var out []string
	for _, l := range p.linesWith(substr) {
		var line struct {
			Time string `json:"time"`
		}
		if json.Unmarshal([]byte(l), &line) != nil {
			continue
		}
		if ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.Time); err == nil && ts.After(at) {
			out = append(out, l)
		}
	}
	return out
}

// sweeps waits until the watch, sampling n connections, has sampled each
// k more times.
func (w *watch) sweeps(k, n int) {
	w.mu.Lock()
	want := w.samples + k*n
	w.mu.Unlock()
	for {
		w.mu.Lock()
		got := w.samples
		w.mu.Unlock()
		if got >= want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// spread is "a/b/c": the values of per for the masters, in slot order.
func spread[V int | int64](masters []node, per map[string]V) string {
	var parts []string
	for _, m := range masters {
		parts = append(parts, fmt.Sprint(per[m.Addr]))
	}
	return strings.Join(parts, "/")
}

// TestRedisClusterFailover — pass condition: with Redis as a Cluster of 3
// masters with a replica each and a password (REDIS_URL in the
// redis-cluster form, so the binaries spread the scan tasks over 16 shard
// queues), two refreshers and a scanner refresh 5-minute tokens while the
// master holding the most pending tasks is SIGKILLed and its replica is
// promoted. The marketplace is up throughout, so:
//   - the scan tasks land on all three masters;
//   - no sampled token ever lapses, no connection gets a second token in
//     one generation, and every marketplace call's token is stored;
//   - every connection is refreshed after the kill: tasks the replica has
//     are run from the promoted replica, and any it never got are
//     recreated by the scanner from MySQL (no token is lost);
//   - the processes run on without a restart, the refresher's embedded
//     dashboard (asynqmon on the cluster client) lists the shard queues
//     after the failover, and no password of the URL reaches a log line.
//
// The refreshers are paused (SIGSTOP) while every connection is brought
// due, so the scanner's tasks wait in the masters' pending lists: they are
// counted per master there, and the kill hits the master holding the most.
// To make "acknowledged but not replicated" certain rather than a matter of
// luck, that master's replica is cut off (a wrong masterauth, its link
// killed) before half of that master's connections come due: their tasks
// are on the master only. The refreshers resume (SIGCONT) once the replica
// is promoted.
func TestRedisClusterFailover(t *testing.T) {
	t.Parallel()
	const (
		n       = 96
		masters = 3
		// As in TestRedisFailover: a task in flight at the kill can be left
		// active on the new master until asynq's recoverer requeues it, up
		// to ~90s, so the refresh window exceeds that; 300s tokens keep the
		// whole 95s window (token.Lead caps it at a third of the lifetime).
		ttl    = 300 * time.Second
		before = 95 * time.Second
	)
	ctx := context.Background()
	c := startCluster(t, masters, 1, clusterPassword)
	ms := c.Masters(ctx)
	require.Len(t, ms, masters, "masters: %v", ms)

	s := newSystem(t, kind{IntegrationType: "16", Kind: "ajio", TokenTTL: ttl, RefreshBefore: before, Timeout: time.Second})
	s.redisURL = c.URL()
	shards := task.DefaultClusterShards
	// Which master a shard queue lives on is its name's slot: the 16
	// shards of a random name miss one of 3 masters about once in 150
	// names. The queue's name is made to reach all three (a suffix, tried
	// in turn), so that where the tasks land measures the product, not
	// the name.
	base := s.env.Queue
	for i := 0; ; i++ {
		reached := map[string]bool{}
		for _, q := range task.ShardNames(s.env.Queue, shards) {
			reached[c.MasterOf("asynq:{"+q+"}:pending").Addr] = true
		}
		if len(reached) == masters {
			break
		}
		require.Less(t, i, 20, "no queue name %s<suffix> whose shards reach all %d masters", base, masters)
		s.env.Queue = fmt.Sprintf("%s_%d", base, i)
	}
	queues := task.ShardNames(s.env.Queue, shards)
	now := time.Now().UTC()
	users, ids := seedFailoverSellers(t, s, n, now, before)

	w := s.watch(users, before)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	r1 := s.startRefresher("HTTP_ADDR="+httpAddr, "DASHBOARD_USER=ops", "DASHBOARD_PASSWORD=dash-pw-1234")
	r2 := s.startRefresher()
	sc := s.startScanner()

	// A whole generation before the failover; the Redis work it took, per
	// master.
	cmdsBefore := c.CommandsProcessed(ctx)
	start := time.Now()
	eventually(t, 60*time.Second, "every connection refreshed once", func() bool { return w.changedAfter(ids, start) })
	cmdsAfter := c.CommandsProcessed(ctx)
	cmds := map[string]int64{}
	for _, m := range ms {
		cmds[m.Addr] = cmdsAfter[m.Addr] - cmdsBefore[m.Addr]
		assert.Positive(t, cmds[m.Addr], "master %s processed commands during the first generation", m.Addr)
	}

	// Which master each connection's shard queue lives on; the victim is
	// the master with the most of them.
	idsOn := map[string][]int64{}
	for _, id := range ids {
		m := c.MasterOf("asynq:{" + task.Shard(s.env.Queue, shards, id) + "}:pending")
		idsOn[m.Addr] = append(idsOn[m.Addr], id)
	}
	victim := ms[0]
	for _, m := range ms {
		if len(idsOn[m.Addr]) > len(idsOn[victim.Addr]) {
			victim = m
		}
	}
	// held come due while the victim's replica is cut off: their tasks
	// are on the victim only, and die with it.
	held := idsOn[victim.Addr][:len(idsOn[victim.Addr])/2]
	rest := slices.DeleteFunc(slices.Clone(ids), func(id int64) bool { return slices.Contains(held, id) })

	// Every connection comes due (5s inside the window) while the
	// refreshers are paused: the scanner's tasks wait, pending, in their
	// shards' queues on the masters.
	r1.signal(syscall.SIGSTOP)
	r2.signal(syscall.SIGSTOP)
	dueNow(t, s, rest, before-5*time.Second)
	eventually(t, 30*time.Second, fmt.Sprintf("the scanner to enqueue %d connections", len(rest)), func() bool {
		_, total := pendingPerMaster(t, c, queues)
		return total == len(rest)
	})
	// The replica's link is held: it is given a wrong masterauth and its
	// link is cut, so it fails to resync and takes nothing the victim is
	// written from now on (its data stays young enough to be promoted).
	replica := c.replicaOf(ctx, victim)
	rc := readOnlyClient(t, replica.Addr, clusterPassword)
	require.NoError(t, rc.ConfigSet(ctx, "masterauth", "not-the-password").Err())
	require.NoError(t, c.client(victim.Addr).ClientKillByFilter(ctx, "TYPE", "replica").Err())
	eventually(t, 10*time.Second, "the replica's link to the victim to be down", func() bool {
		repl, err := rc.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(repl, "master_link_status:down")
	})
	dueNow(t, s, held, before-5*time.Second)
	var perMaster map[string]int
	eventually(t, 30*time.Second, fmt.Sprintf("the scanner to enqueue the %d connections", n), func() bool {
		var total int
		perMaster, total = pendingPerMaster(t, c, queues)
		return total == n
	})
	var lost []int64 // tasks pending on the victim its replica does not have
	for _, id := range held {
		key := "asynq:{" + task.Shard(s.env.Queue, shards, id) + "}:t:" + task.ID(id)
		has, err := rc.Exists(ctx, key).Result()
		require.NoError(t, err, "EXISTS %s on the replica %s", key, replica.Addr)
		if has == 0 {
			lost = append(lost, id)
		}
	}
	repl, err := rc.Info(ctx, "replication").Result()
	require.NoError(t, err)
	require.Contains(t, repl, "master_link_status:down", "the replica's link is still held")
	require.GreaterOrEqual(t, len(lost), 3, "the victim holds tasks its replica never got (held %d)", len(held))
	for _, m := range ms {
		assert.Positive(t, perMaster[m.Addr], "master %s holds pending tasks: %v", m, perMaster)
	}
	onVictim := perMaster[victim.Addr]
	t.Logf("pending tasks per master: %v; killing %s, whose replica %s lacks %d of them", perMaster, victim, replica.Addr, len(lost))

	_, enqueuedAtKill, _, _ := scanTotals(sc)
	killed := time.Now()
	c.Kill(victim)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	toPromotion := c.WaitPromoted(wctx, victim)
	promoted := killed.Add(toPromotion)
	r1.signal(syscall.SIGCONT)
	r2.signal(syscall.SIGCONT)

	// Every connection gets its next token after the kill. The tokens have
	// 90s left: waiting 80s at most leaves the lapse check meaningful.
	deadline := time.Now().Add(80 * time.Second)
	for !w.changedAfter(ids, killed) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	firstAfter := firstRefreshAfter(killed, r1, r2)
	_, enqueuedAfter, _, _ := scanTotals(sc)
	var never []int64 // connections not refreshed after the kill
	var lastAfter time.Time
	w.mu.Lock()
	for _, id := range ids {
		if !w.changed[id].After(killed) {
			never = append(never, id)
		}
		if w.changed[id].After(lastAfter) {
			lastAfter = w.changed[id]
		}
	}
	w.mu.Unlock()
	require.Empty(t, never, "every connection refreshed after the kill (lost tasks: %v)", lost)
	assert.GreaterOrEqual(t, enqueuedAfter-enqueuedAtKill, len(lost), "the scanner recreated the lost tasks")
	assert.NotEmpty(t, sc.linesAfter(promoted, `"msg":"scanned"`), "the scanner scans after the promotion")

	// The processes run on: the next generation, all of it due at once,
	// is refreshed on the three masters, the promoted replica among them.
	// The refreshers wait until the watch has seen the moved expiries, so
	// it does not take the old ones for the tokens replaced.
	r1.signal(syscall.SIGSTOP)
	r2.signal(syscall.SIGSTOP)
	again := time.Now()
	dueNow(t, s, ids, before-5*time.Second)
	w.sweeps(2, n)
	r1.signal(syscall.SIGCONT)
	r2.signal(syscall.SIGCONT)
	eventually(t, 60*time.Second, "every connection refreshed again after the failover", func() bool {
		return w.changedAfter(ids, again)
	})
	w.end()
	msAfter := c.Masters(ctx)

	assert.Zero(t, w.lapses, "no token lapsed while the marketplace was up: %v", w.lapsed)
	assert.Empty(t, w.early, "no second token for one generation")
	calls := s.market.calls()
	for id, u := range users {
		// The watch saw the first generation's seed token replaced too:
		// every call's token was stored, once.
		assert.Equal(t, calls[u], w.stored[id], "connection %d: marketplace calls = tokens stored", id)
	}
	s.requireTokens(users)
	assert.Len(t, msAfter, masters, "three masters after the promotion: %v", msAfter)

	// The embedded dashboard (asynqmon on the same cluster client) follows
	// the promoted replica and lists the shard queues.
	req, err := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/monitoring/api/queues", nil)
	require.NoError(t, err)
	req.SetBasicAuth("ops", "dash-pw-1234")
	resp, err := control.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the dashboard answers after the failover: %s", body)
	for _, q := range queues {
		assert.Contains(t, string(body), `"`+q+`"`, "the dashboard lists the shard queue %s", q)
	}
	for _, p := range []*proc{r1, r2, sc} {
		assert.True(t, p.running(), "%s kept running", p.name)
		out := p.out.String()
		for _, secret := range []string{clusterPassword, url.QueryEscape(clusterPassword)} {
			assert.NotContains(t, out, secret, "%s logs no password", p.name)
		}
	}
	require.False(t, firstAfter.IsZero(), "a refresh after the kill")
	figure(t, "connections=%d masters=%d shards=%d ttl=%s before=%s tasks_per_master=%s commands_per_master=%s samples=%d lapses=%d early=%d lost=%d tasks_lost_with_master=%d kill_to_promotion=%s kill_to_first_refresh=%s kill_to_all_refreshed=%s pending_on_killed_master=%d enqueued_after_kill=%d calls=%d closest_to_expiry=%s",
		n, masters, shards, ttl, before, spread(ms, perMaster), spread(ms, cmds), w.samples, w.lapses, len(w.early), len(never), len(lost),
		toPromotion.Round(100*time.Millisecond), firstAfter.Sub(killed).Round(100*time.Millisecond), lastAfter.Sub(killed).Round(100*time.Millisecond), onVictim,
		enqueuedAfter-enqueuedAtKill, s.market.stats().Calls, w.closest.Round(100*time.Millisecond))
}
