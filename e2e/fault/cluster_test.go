package fault

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clusterPassword is the requirepass and masterauth of the cluster tests;
// the '@' and the '/' need percent-encoding in REDIS_URL.
const clusterPassword = "cl@ster/pw-4242"

// cluster is a Redis Cluster of private redis-server processes on loopback,
// each in a directory of its own. The processes die with the test binary
// (startProc's KillWithParent) and are killed when the test ends.
type cluster struct {
	t        testing.TB
	password string
	servers  []*clusterServer // in the order given to --cluster create: the masters first

	mu      sync.Mutex
	clients map[string]*redis.Client // one per node, closed at cleanup
	killed  map[string]killedMaster  // by address
}

type clusterServer struct {
	addr string
	p    *proc
}

type killedMaster struct {
	at       time.Time
	replicas []string // node IDs of its replicas when it was killed
}

// node is a cluster node as CLUSTER NODES on a live node describes it.
type node struct {
	ID     string
	Addr   string // 127.0.0.1:port
	Master string // its master's node ID; "" for a master
	Failed bool   // flagged fail or fail? by the node asked
	Slots  [][2]int
}

func (n node) master() bool { return n.Master == "" }

// serves tells whether slot is in one of the node's slot ranges.
func (n node) serves(slot int) bool {
	for _, r := range n.Slots {
		if r[0] <= slot && slot <= r[1] {
			return true
		}
	}
	return false
}

func (n node) String() string {
	var rs []string
	for _, r := range n.Slots {
		if r[0] == r[1] {
			rs = append(rs, strconv.Itoa(r[0]))
		} else {
			rs = append(rs, fmt.Sprintf("%d-%d", r[0], r[1]))
		}
	}
	return fmt.Sprintf("%s[%s]", n.Addr, strings.Join(rs, ","))
}

// redisCLIPath returns the redis-cli next to server (Debian's redis-tools,
// a dependency of redis-server), installing redis-tools when it is missing.
// A test that needs it fails, never skips, when it cannot.
func redisCLIPath(t testing.TB, server string) string {
	t.Helper()
	find := func() (string, error) {
		next := filepath.Join(filepath.Dir(server), "redis-cli")
		if p, err := exec.LookPath(next); err == nil {
			return p, nil
		}
		return exec.LookPath("redis-cli")
	}
	if p, err := find(); err == nil {
		return p
	}
	aptInstall(t, "redis-tools")
	p, err := find()
	require.NoError(t, err, "redis-cli is needed for the Cluster tests and could not be installed (apt-get install redis-tools)")
	return p
}

// startCluster starts masters*(1+replicasPerMaster) redis-servers in
// cluster mode (node timeout 2s, no persistence), with requirepass and
// masterauth when password is set, joins them with redis-cli --cluster
// create and returns when every node says cluster_state:ok with all 16384
// slots served and every replica is in sync.
func startCluster(t testing.TB, masters, replicasPerMaster int, password string) *cluster {
	t.Helper()
	server := redisServerPath(t)
	cli := redisCLIPath(t, server)
	c := &cluster{t: t, password: password, clients: map[string]*redis.Client{}, killed: map[string]killedMaster{}}
	t.Cleanup(c.closeClients)

	n := masters * (1 + replicasPerMaster)
	used := map[int]bool{}
	port := func() int {
		for {
			if p := freePort(t); !used[p] {
				used[p] = true
				return p
			}
		}
	}
	for range n {
		// The bus port is a free port of its own: the default, port+10000,
		// is past 65535 for most ephemeral ports.
		p, bus := port(), port()
		args := []string{"--port", strconv.Itoa(p), "--cluster-port", strconv.Itoa(bus), "--bind", "127.0.0.1",
			"--dir", t.TempDir(), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"}
		if password != "" {
			args = append(args, "--requirepass", password, "--masterauth", password)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", p)
		c.servers = append(c.servers, &clusterServer{addr: addr, p: startProc(t, "cluster node "+addr, server, nil, args...)})
	}
	for _, s := range c.servers {
		s.p.waitLog(20*time.Second, "Ready to accept connections")
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicasPerMaster), "--cluster-yes")
	if password != "" {
		args = append(args, "-a", password, "--no-auth-warning")
	}
	create := startProc(t, "redis-cli --cluster create", cli, nil, args...)
	select {
	case <-create.Done():
	case <-time.After(60 * time.Second):
		t.Fatalf("redis-cli --cluster create %s did not finish within 60s; its output:\n%s",
			strings.Join(c.Addrs(), " "), tail(create.out.String(), 40))
	}
	if out := create.out.String(); create.Err() != nil || !strings.Contains(out, "[OK] All 16384 slots covered") {
		t.Fatalf("redis-cli --cluster create %s failed (%v); its output:\n%s", strings.Join(c.Addrs(), " "), create.Err(), tail(out, 40))
	}

	ctx := context.Background()
	var why string
	defer func() {
		if t.Failed() {
			t.Logf("cluster not ready: %s", why)
		}
	}()
	eventually(t, 60*time.Second, "every cluster node to say cluster_state:ok with all slots and every replica to be in sync", func() bool {
		why = c.ready(ctx, n, masters)
		return why == ""
	})
	return c
}

// ready is "" when every node says cluster_state:ok, knows n nodes and
// sees all 16384 slots served, the first node names masters masters, and
// every replica's link to its master is up; else what is missing.
func (c *cluster) ready(ctx context.Context, n, masters int) string {
	for _, s := range c.servers {
		info, err := c.clusterInfo(ctx, s.addr)
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", s.addr, err)
		}
		if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != "16384" || info["cluster_known_nodes"] != strconv.Itoa(n) {
			return fmt.Sprintf("%s: cluster_state:%s cluster_slots_ok:%s cluster_known_nodes:%s", s.addr,
				info["cluster_state"], info["cluster_slots_ok"], info["cluster_known_nodes"])
		}
	}
	nodes, err := c.nodes(ctx)
	if err != nil {
		return err.Error()
	}
	var ms int
	for _, nd := range nodes {
		if nd.master() {
			ms++
			continue
		}
		repl, err := c.client(nd.Addr).Info(ctx, "replication").Result()
		if err != nil || !strings.Contains(repl, "master_link_status:up") {
			return fmt.Sprintf("replica %s not in sync (%v)", nd.Addr, err)
		}
	}
	if ms != masters {
		return fmt.Sprintf("%d masters, want %d", ms, masters)
	}
	return ""
}

// client is a client of one node (no retries, short timeouts), kept for
// the test.
func (c *cluster) client(addr string) *redis.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[addr]; ok {
		return cl
	}
	cl := redis.NewClient(&redis.Options{Addr: addr, Password: c.password, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	c.clients[addr] = cl
	return cl
}

func (c *cluster) closeClients() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.Close()
	}
}

// live are the servers not killed.
func (c *cluster) live() []*clusterServer {
	var out []*clusterServer
	for _, s := range c.servers {
		if s.p.running() {
			out = append(out, s)
		}
	}
	return out
}

func (c *cluster) clusterInfo(ctx context.Context, addr string) (map[string]string, error) {
	s, err := c.client(addr).ClusterInfo(ctx).Result()
	if err != nil {
		return nil, err
	}
	info := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			info[k] = v
		}
	}
	return info, nil
}

// nodesOf is CLUSTER NODES as the node at addr sees the cluster.
func (c *cluster) nodesOf(ctx context.Context, addr string) ([]node, error) {
	s, err := c.client(addr).ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	return parseClusterNodes(s)
}

// nodes is CLUSTER NODES as the first live node that answers sees it.
func (c *cluster) nodes(ctx context.Context) ([]node, error) {
	errs := []error{errors.New("no live node")}
	for _, s := range c.live() {
		nodes, err := c.nodesOf(ctx, s.addr)
		if err == nil {
			return nodes, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.addr, err))
	}
	return nil, errors.Join(errs...)
}

// parseClusterNodes reads CLUSTER NODES: <id> <ip:port@cport[,hostname]>
// <flags> <master> <ping-sent> <pong-recv> <config-epoch> <link-state>
// <slot>... (a slot migrating or importing, "[...]", is left out).
func parseClusterNodes(s string) ([]node, error) {
	var out []node
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q", l)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := strings.Split(f[2], ",")
		n := node{ID: f[0], Addr: addr, Failed: slices.Contains(flags, "fail") || slices.Contains(flags, "fail?")}
		if !slices.Contains(flags, "master") {
			n.Master = f[3]
		}
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				continue
			}
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES slot range %q in %q", r, l)
			}
			n.Slots = append(n.Slots, [2]int{a, b})
		}
		out = append(out, n)
	}
	return out, nil
}

// Addrs are the addresses of all nodes, killed ones included, in the order
// they were given to --cluster create.
func (c *cluster) Addrs() []string {
	var out []string
	for _, s := range c.servers {
		out = append(out, s.addr)
	}
	return out
}

// URL is REDIS_URL for the cluster:
// redis-cluster://[:password@]host1:port,host2:port,... with the password
// percent-encoded.
func (c *cluster) URL() string {
	u := "redis-cluster://"
	if c.password != "" {
		u += url.UserPassword("", c.password).String() + "@"
	}
	return u + strings.Join(c.Addrs(), ",")
}

// Client is a go-redis cluster client of the cluster, closed when t ends.
func (c *cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.password})
	t.Cleanup(func() { cc.Close() })
	return cc
}

// Masters are the masters not failing, with the slot ranges they serve, as
// a live node sees them, in slot order (masters without slots last). It
// fails the test when no node answers.
func (c *cluster) Masters(ctx context.Context) []node {
	c.t.Helper()
	nodes, err := c.nodes(ctx)
	require.NoError(c.t, err, "CLUSTER NODES")
	var out []node
	for _, n := range nodes {
		if n.master() && !n.Failed {
			out = append(out, n)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if len(out[i].Slots) == 0 || len(out[j].Slots) == 0 {
			return len(out[j].Slots) == 0 && len(out[i].Slots) > 0
		}
		return out[i].Slots[0][0] < out[j].Slots[0][0]
	})
	return out
}

// keySlot is CLUSTER KEYSLOT key, asked of a live node.
func (c *cluster) keySlot(ctx context.Context, key string) int {
	c.t.Helper()
	var errs []error
	for _, s := range c.live() {
		slot, err := c.client(s.addr).ClusterKeySlot(ctx, key).Result()
		if err == nil {
			return int(slot)
		}
		errs = append(errs, err)
	}
	c.t.Fatalf("CLUSTER KEYSLOT %s: %v", key, errors.Join(errs...))
	return -1
}

// MasterOf is the master serving key's slot.
func (c *cluster) MasterOf(key string) node {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slot := c.keySlot(ctx, key)
	masters := c.Masters(ctx)
	for _, m := range masters {
		if m.serves(slot) {
			return m
		}
	}
	c.t.Fatalf("no master serves slot %d of %q; masters: %v", slot, key, masters)
	return node{}
}

// Kill SIGKILLs n's process and notes when, and which replicas n had, for
// WaitPromoted.
func (c *cluster) Kill(n node) {
	c.t.Helper()
	var replicas []string
	if nodes, err := c.nodes(context.Background()); err == nil {
		for _, r := range nodes {
			if r.Master == n.ID {
				replicas = append(replicas, r.ID)
			}
		}
	}
	for _, s := range c.servers {
		if s.addr == n.Addr {
			s.p.kill()
			c.mu.Lock()
			c.killed[n.Addr] = killedMaster{at: time.Now(), replicas: replicas}
			c.mu.Unlock()
			return
		}
	}
	c.t.Fatalf("no cluster node %s", n.Addr)
}

// WaitPromoted waits until a replica of the master killed (by Kill) is a
// master serving slots and every remaining node says cluster_state:ok with
// all 16384 slots served, and returns how long that took after the kill. It
// fails the test when ctx ends first.
func (c *cluster) WaitPromoted(ctx context.Context, killed node) time.Duration {
	c.t.Helper()
	c.mu.Lock()
	k, ok := c.killed[killed.Addr]
	c.mu.Unlock()
	require.True(c.t, ok, "%s was not killed with Kill", killed.Addr)
	require.NotEmpty(c.t, k.replicas, "the killed master %s had no replica to promote", killed.Addr)
	for {
		why := c.promoted(ctx, k.replicas)
		if why == "" {
			return time.Since(k.at)
		}
		select {
		case <-ctx.Done():
			c.t.Fatalf("no replica of the killed master %s promoted after %s (%v): %s",
				killed.Addr, time.Since(k.at).Round(time.Millisecond), ctx.Err(), why)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// promoted is "" when every live node says cluster_state:ok with all slots
// served and sees one of replicas as a master with slots; else what is
// missing.
func (c *cluster) promoted(ctx context.Context, replicas []string) string {
	for _, s := range c.live() {
		info, err := c.clusterInfo(ctx, s.addr)
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", s.addr, err)
		}
		if info["cluster_state"] != "ok" || info["cluster_slots_ok"] != "16384" {
			return fmt.Sprintf("%s: cluster_state:%s cluster_slots_ok:%s", s.addr, info["cluster_state"], info["cluster_slots_ok"])
		}
		nodes, err := c.nodesOf(ctx, s.addr)
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER NODES: %v", s.addr, err)
		}
		if !slices.ContainsFunc(nodes, func(n node) bool {
			return n.master() && !n.Failed && len(n.Slots) > 0 && slices.Contains(replicas, n.ID)
		}) {
			return fmt.Sprintf("%s: no former replica is a master yet", s.addr)
		}
	}
	return ""
}

// CommandsProcessed is total_commands_processed of INFO stats of every
// master, by address. It counts the harness's own commands too (INFO,
// CLUSTER, DBSIZE).
func (c *cluster) CommandsProcessed(ctx context.Context) map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	for _, m := range c.Masters(ctx) {
		s, err := c.client(m.Addr).Info(ctx, "stats").Result()
		require.NoError(c.t, err, "INFO stats of %s", m.Addr)
		for _, l := range strings.Split(s, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				require.NoError(c.t, err, "total_commands_processed of %s", m.Addr)
				out[m.Addr] = n
			}
		}
		require.Contains(c.t, out, m.Addr, "INFO stats of %s has total_commands_processed", m.Addr)
	}
	return out
}

// KeysPerMaster is DBSIZE of every master, by address.
func (c *cluster) KeysPerMaster(ctx context.Context) map[string]int64 {
	c.t.Helper()
	out := map[string]int64{}
	for _, m := range c.Masters(ctx) {
		n, err := c.client(m.Addr).DBSize(ctx).Result()
		require.NoError(c.t, err, "DBSIZE of %s", m.Addr)
		out[m.Addr] = n
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return strconv.Quote(err.Error())
}

// TestClusterHarness — pass condition: the harness forms a cluster of 3
// masters with a replica each; 1000 keys written through go-redis spread
// over all 3 masters; when the master of a key acknowledged by a replica
// (WAIT) is SIGKILLed, its replica is promoted within 30s and the key, and
// every other key, is still readable.
func TestClusterHarness(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	began := time.Now()
	c := startCluster(t, 3, 1, clusterPassword)
	formed := time.Since(began)
	masters := c.Masters(ctx)
	require.Len(t, masters, 3, "masters: %v", masters)
	t.Logf("cluster formed in %s: masters %v", formed.Round(time.Millisecond), masters)

	u, err := url.Parse(c.URL())
	require.NoError(t, err, "URL %s", c.URL())
	assert.Equal(t, "redis-cluster", u.Scheme)
	pw, _ := u.User.Password()
	assert.Equal(t, clusterPassword, pw, "the password survives the URL")
	assert.Equal(t, c.Addrs(), strings.Split(u.Host, ","))
	assert.NotContains(t, c.URL(), clusterPassword, "the password is percent-encoded")

	cc := c.Client(t)
	before := c.CommandsProcessed(ctx)
	_, err = cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 1000 {
			p.Set(ctx, fmt.Sprintf("key:%d", i), i, 0)
		}
		return nil
	})
	require.NoError(t, err, "write 1000 keys")
	after := c.CommandsProcessed(ctx)
	keys := c.KeysPerMaster(ctx)
	var total int64
	for _, m := range masters {
		assert.Positive(t, keys[m.Addr], "master %s holds keys", m.Addr)
		assert.Greater(t, after[m.Addr], before[m.Addr], "master %s processed commands", m.Addr)
		total += keys[m.Addr]
	}
	assert.EqualValues(t, 1000, total)
	t.Logf("1000 keys per master: %v; commands processed per master: before %v, after %v", keys, before, after)

	// The probe: written last, on one connection to its master, and
	// acknowledged by the replica; replication is in order, so every key
	// that master took before is on the replica too.
	const probe = "probe"
	owner := c.MasterOf(probe)
	mc, err := cc.MasterForKey(ctx, probe)
	require.NoError(t, err)
	require.Equal(t, owner.Addr, mc.Options().Addr, "go-redis and CLUSTER KEYSLOT agree on the probe's master")
	conn := mc.Conn()
	require.NoError(t, conn.Set(ctx, probe, "written before the kill", 0).Err())
	acked, err := conn.Wait(ctx, 1, time.Second).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, acked, "WAIT 1 1000: the replica has the probe")
	require.NoError(t, conn.Close())

	c.Kill(owner)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	took := c.WaitPromoted(wctx, owner)
	require.Less(t, took, 30*time.Second)
	promoted := c.MasterOf(probe)
	require.NotEqual(t, owner.Addr, promoted.Addr, "the probe has a new master")
	require.Equal(t, owner.Slots, promoted.Slots, "the promoted replica serves the killed master's slots")
	require.Len(t, c.Masters(ctx), 3)

	// A client made after the promotion reads the probe at once.
	got, err := c.Client(t).Get(ctx, probe).Result()
	require.NoError(t, err, "a new cluster client reads the probe after the promotion")
	assert.Equal(t, "written before the kill", got)
	// The client that wrote still sends the killed master's slots to the
	// dead address: go-redis reloads its slot map on MOVED or ASK and every
	// ClusterStateReloadInterval (60s by default), not on a dial error.
	staleErr := cc.Get(ctx, probe).Err()
	cc.ReloadState(ctx) // asynchronous
	eventually(t, 10*time.Second, "the writing client to read the probe after ReloadState", func() bool {
		got, err = cc.Get(ctx, probe).Result()
		return err == nil
	})
	assert.Equal(t, "written before the kill", got)
	cmds, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 1000 {
			p.Get(ctx, fmt.Sprintf("key:%d", i))
		}
		return nil
	})
	require.NoError(t, err, "read the 1000 keys after the promotion")
	for i, cmd := range cmds {
		v, err := cmd.(*redis.StringCmd).Result()
		require.NoError(t, err, "key:%d", i)
		require.Equal(t, strconv.Itoa(i), v, "key:%d", i)
	}
	keysAfter := c.KeysPerMaster(ctx)
	total = 0
	for _, n := range keysAfter {
		total += n
	}
	assert.EqualValues(t, 1001, total, "the 1000 keys and the probe, per master: %v", keysAfter)
	t.Logf("FIGURE cluster failover: masters=3 replicas_per_master=1 node_timeout=2000ms formed_in=%s killed=%s promoted=%s promotion_took=%s writing_client_before_reload=%v keys_after=%v",
		formed.Round(time.Millisecond), owner, promoted, took.Round(time.Millisecond), errString(staleErr), keysAfter)
}

// TestClusterAsynqQueues — pass condition: asynq runs on the cluster with
// RedisClusterClientOpt: 60 tasks enqueued over 12 queues (each queue's
// keys hash-tagged {queue}, so a queue lives on one master) are processed
// exactly once by one server listening on all 12, and the queues spread
// over at least 2 of the 3 masters.
func TestClusterAsynqQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := startCluster(t, 3, 0, clusterPassword)
	opt := asynq.RedisClusterClientOpt{Addrs: c.Addrs(), Password: clusterPassword}

	// Fixed names, so the slots and the spread are the same on every run;
	// the cluster is fresh, so they collide with nothing.
	var queues []string
	weights := map[string]int{}
	for i := range 12 {
		q := fmt.Sprintf("clustertest.%d", i)
		queues = append(queues, q)
		weights[q] = 1
	}

	client := asynq.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	for i := range 60 {
		_, err := client.Enqueue(asynq.NewTask("cluster:probe", []byte(strconv.Itoa(i))),
			asynq.Queue(queues[i%len(queues)]), asynq.TaskID(fmt.Sprintf("task-%d", i)))
		require.NoError(t, err, "enqueue task %d", i)
	}

	inspector := asynq.NewInspector(opt)
	t.Cleanup(func() { inspector.Close() })
	listed, err := inspector.Queues()
	require.NoError(t, err, "Inspector.Queues")
	assert.ElementsMatch(t, queues, listed, "Inspector.Queues lists the 12 queues")

	masters := c.Masters(ctx)
	require.Len(t, masters, 3)
	spread := map[string][]string{} // master address -> queues
	var lines []string
	for _, q := range queues {
		key := "asynq:{" + q + "}:pending"
		m := c.MasterOf(key)
		slot, err := inspector.ClusterKeySlot(q)
		require.NoError(t, err)
		require.True(t, m.serves(int(slot)), "asynq's slot %d of %s is served by %s", slot, q, m)
		nodes, err := inspector.ClusterNodes(q)
		require.NoError(t, err)
		require.NotEmpty(t, nodes)
		assert.Equal(t, m.Addr, nodes[0].Addr, "asynq's Inspector.ClusterNodes names the master of %s", q)
		n, err := c.client(m.Addr).LLen(ctx, key).Result()
		require.NoError(t, err)
		assert.EqualValues(t, 5, n, "%s holds the 5 pending tasks of %s", m.Addr, q)
		info, err := inspector.GetQueueInfo(q)
		require.NoError(t, err, "GetQueueInfo %s", q)
		assert.Equal(t, 5, info.Pending, "queue %s", q)
		spread[m.Addr] = append(spread[m.Addr], q)
		lines = append(lines, fmt.Sprintf("%s=slot %d@%s", q, slot, m.Addr))
	}
	t.Logf("queues: %s", strings.Join(lines, " "))
	holding := 0
	var perMaster []string
	for _, m := range masters {
		if len(spread[m.Addr]) > 0 {
			holding++
		}
		perMaster = append(perMaster, fmt.Sprintf("%s:%d", m, len(spread[m.Addr])))
	}
	assert.GreaterOrEqual(t, holding, 2, "the 12 queues spread over at least 2 of the 3 masters: %v", spread)

	var mu sync.Mutex
	runs := map[string]int{}
	mux := asynq.NewServeMux()
	mux.HandleFunc("cluster:probe", func(_ context.Context, task *asynq.Task) error {
		mu.Lock()
		runs[string(task.Payload())]++
		mu.Unlock()
		return nil
	})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: 4, Queues: weights, LogLevel: asynq.WarnLevel})
	began := time.Now()
	require.NoError(t, srv.Start(mux))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			srv.Shutdown()
		}
	})
	eventually(t, 60*time.Second, "the 60 tasks to be processed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(runs) == 60
	})
	took := time.Since(began)
	// The server's heartbeat: asynq:servers and asynq:workers are not
	// hash-tagged, each lives on one master, and the server's own keys
	// ({host:pid:id}) on another.
	eventually(t, 10*time.Second, "Inspector.Servers to list the server with the 12 queues", func() bool {
		servers, err := inspector.Servers()
		return err == nil && len(servers) == 1 && len(servers[0].Queues) == 12
	})
	var global []string
	for _, key := range []string{"asynq:queues", "asynq:servers", "asynq:workers"} {
		global = append(global, fmt.Sprintf("%s@%s", key, c.MasterOf(key).Addr))
	}
	eventually(t, 30*time.Second, "every queue to be empty with its tasks counted processed", func() bool {
		for _, q := range queues {
			info, err := inspector.GetQueueInfo(q)
			if err != nil || info.Size != 0 || info.ProcessedTotal != 5 {
				return false
			}
		}
		return true
	})
	// The queues are empty: one more dequeue round of the server would
	// show a second run of a task here.
	time.Sleep(1500 * time.Millisecond)
	srv.Shutdown()
	stopped = true
	mu.Lock()
	defer mu.Unlock()
	for i := range 60 {
		assert.Equal(t, 1, runs[strconv.Itoa(i)], "task %d ran once", i)
	}
	assert.Len(t, runs, 60)
	t.Logf("FIGURE cluster asynq queues: masters=3 queues=12 tasks=60 processed_once=%d processed_in=%s queues_per_master=%s global_keys=%s",
		len(runs), took.Round(time.Millisecond), strings.Join(perMaster, " "), strings.Join(global, " "))
}
