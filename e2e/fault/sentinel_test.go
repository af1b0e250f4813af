package fault

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Passwords of the sentinel topology. Tests check that neither reaches a
// log line of the binaries.
const (
	masterPassword   = "m@ster-pw-4711" // needs percent-encoding in the URL
	sentinelPassword = "watchers-pw-0815"
	masterName       = "tokens"
)

var (
	aptMu    sync.Mutex
	aptTried = map[string]bool{}
)

// aptInstall installs Debian packages, as root or through sudo -n, trying
// each package once per test binary and logging what fails; the caller
// looks for what it needed and fails, never skips, without it.
func aptInstall(t testing.TB, pkgs ...string) {
	t.Helper()
	aptMu.Lock()
	defer aptMu.Unlock()
	var todo []string
	for _, pkg := range pkgs {
		if !aptTried[pkg] {
			aptTried[pkg] = true
			todo = append(todo, pkg)
		}
	}
	if len(todo) == 0 {
		return
	}
	for _, args := range [][]string{
		{"apt-get", "update", "-qq"},
		append([]string{"env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq"}, todo...),
	} {
		if os.Geteuid() != 0 {
			args = append([]string{"sudo", "-n"}, args...)
		}
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Logf("%s: %v\n%s", strings.Join(args, " "), err, tail(string(out), 20))
		}
	}
}

// redisServerPath returns Debian's redis-server, installing the package when
// it is missing. A test that needs it fails, never skips, when it cannot.
func redisServerPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	aptInstall(t, "redis-server")
	p, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server is needed for the Sentinel and Cluster tests and could not be installed (apt-get install redis-server)")
	return p
}

// redisNode is one redis-server of the topology: its port and arguments,
// so it can be killed and started again as it was.
type redisNode struct {
	name string
	port int
	args []string
	dir  string
	p    *proc
}

func (n *redisNode) sentinel() bool { return len(n.args) > 1 && n.args[1] == "--sentinel" }

// topology is a master and a replica with requirepass and masterauth, and
// three sentinels with a password of their own, all on loopback. The
// replica replicates through a TCP proxy, so a test can hold the
// replication stream (the asynchronous replication Sentinel lives with) and
// make writes the master acknowledged miss the replica.
type topology struct {
	t         testing.TB
	server    string
	master    *redisNode // the node started as master
	replica   *redisNode
	sentinels []*redisNode
	repl      *dbProxy // between the replica and the master
}

func startTopology(t testing.TB) *topology {
	t.Helper()
	server := redisServerPath(t)
	top := &topology{t: t, server: server}
	common := func(port int, dir string) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", dir, "--requirepass", masterPassword, "--masterauth", masterPassword, "--repl-diskless-sync-delay", "0"}
	}
	mport := freePort(t)
	top.master = &redisNode{name: "redis master", port: mport, dir: t.TempDir()}
	top.master.args = common(mport, top.master.dir)
	top.start(top.master)

	top.repl = newDBProxy(t, fmt.Sprintf("127.0.0.1:%d", mport))
	rport := freePort(t)
	top.replica = &redisNode{name: "redis replica", port: rport, dir: t.TempDir()}
	_, pport, _ := strings.Cut(top.repl.ln.Addr().String(), ":")
	top.replica.args = append(common(rport, top.replica.dir), "--replicaof", "127.0.0.1", pport)
	top.start(top.replica)

	for i := range 3 {
		port := freePort(t)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		// down-after is 4s (the default is 30s): longer than /readyz's 3s
		// check, so a probe started at the kill surely sees the outage.
		// failover-timeout is long so the sentinels leave the replica on its
		// proxied link (they "fix" a replica of a wrong address only after
		// it); it does not slow down the promotion itself.
		require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`port %d
bind 127.0.0.1
dir %s
requirepass %s
sentinel sentinel-pass %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s 4000
sentinel failover-timeout %s 900000
sentinel parallel-syncs %s 1
`, port, dir, sentinelPassword, sentinelPassword, masterName, mport, masterName, masterPassword,
			masterName, masterName, masterName)), 0o600))
		n := &redisNode{name: fmt.Sprintf("sentinel %d", i+1), port: port, dir: dir, args: []string{conf, "--sentinel"}}
		top.start(n)
		top.sentinels = append(top.sentinels, n)
	}
	// Ready: the replica is in sync, and every sentinel knows the replica
	// and the two other sentinels (quorum and majority reachable).
	eventually(t, 60*time.Second, "the replica to sync", func() bool {
		return strings.Contains(top.info(top.replica, "replication"), "master_link_status:up")
	})
	ctx := context.Background()
	eventually(t, 60*time.Second, "the sentinels to see the replica and each other", func() bool {
		for _, s := range top.sentinels {
			c := top.sentinel(s)
			reps, err1 := c.Replicas(ctx, masterName).Result()
			sens, err2 := c.Sentinels(ctx, masterName).Result()
			ok, err3 := c.CkQuorum(ctx, masterName).Result()
			c.Close()
			if err1 != nil || err2 != nil || err3 != nil || len(reps) != 1 || len(sens) != 2 || !strings.HasPrefix(ok, "OK") {
				return false
			}
		}
		return true
	})
	return top
}

func (top *topology) start(n *redisNode) {
	top.t.Helper()
	n.p = startProc(top.t, n.name, top.server, nil, n.args...)
	ready := "Ready to accept connections"
	if n.sentinel() {
		ready = "+monitor master"
	}
	n.p.waitLog(20*time.Second, ready)
}

// URL is REDIS_URL for the binaries: asynq's form with the master's
// credentials in the query.
func (top *topology) URL() string {
	var addrs []string
	for _, s := range top.sentinels {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", s.port))
	}
	q := url.Values{"master": {masterName}, "password": {masterPassword}}
	return "redis-sentinel://:" + sentinelPassword + "@" + strings.Join(addrs, ",") + "/0?" + q.Encode()
}

func (top *topology) sentinel(n *redisNode) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", n.port), Password: sentinelPassword})
}

// client talks to one node directly.
func (top *topology) client(n *redisNode) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", n.port), Password: masterPassword,
		MaxRetries: -1, DialTimeout: time.Second})
}

func (top *topology) info(n *redisNode, section string) string {
	c := top.client(n)
	defer c.Close()
	s, _ := c.Info(context.Background(), section).Result()
	return s
}

// masterPort is the master's port as every sentinel names it, or 0 while
// they disagree.
func (top *topology) masterPort() int {
	port := 0
	for _, s := range top.sentinels {
		c := top.sentinel(s)
		addr, err := c.GetMasterAddrByName(context.Background(), masterName).Result()
		c.Close()
		if err != nil || len(addr) != 2 {
			return 0
		}
		p, _ := strconv.Atoi(addr[1])
		if port != 0 && p != port {
			return 0
		}
		port = p
	}
	return port
}

// failover holds replication (so the writes of the last moments reach only
// the master), runs during() and SIGKILLs the master, then waits until
// every sentinel names the replica and starts the old master again with its
// own settings, which the sentinels turn into a replica of the new master.
// It returns when the killed master and the promotion happened.
func (top *topology) failover(during func()) (killed, promoted time.Time) {
	t := top.t
	t.Helper()
	top.repl.Stall()
	if during != nil {
		during()
	}
	top.master.p.Signal(syscall.SIGKILL)
	<-top.master.p.Done()
	killed = time.Now()
	top.repl.Cut()
	eventually(t, 60*time.Second, "the sentinels to promote the replica", func() bool { return top.masterPort() == top.replica.port })
	promoted = time.Now()
	return killed, promoted
}

// rejoin starts the killed master again as it was (a master, empty) and
// waits until the sentinels have made it a replica of the new master.
func (top *topology) rejoin() {
	t := top.t
	t.Helper()
	top.start(top.master)
	eventually(t, 60*time.Second, "the old master to rejoin as a replica", func() bool {
		info := top.info(top.master, "replication")
		return strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") &&
			strings.Contains(info, fmt.Sprintf("master_port:%d", top.replica.port))
	})
}
