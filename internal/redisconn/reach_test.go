package redisconn

import (
	"context"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAddr(t *testing.T) {
	t.Parallel()
	opt, err := ParseURL("redis://:hunter2@10.0.0.5:6380/3")
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.5:6380", Addr(opt))
	assert.Equal(t, `master "mymaster" via sentinels s1:26379,s2:26379`,
		Addr(asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, Password: "hunter2"}))
	assert.Equal(t, "n1:7000,n2:7000", Addr(asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7000"}}))
	opt, err = ParseURL("redis-cluster://:hunter2@n1:7000,n2:7000")
	require.NoError(t, err)
	assert.Equal(t, "cluster nodes n1:7000,n2:7000", Addr(opt))
}

// A server whose answer quotes the password: the start-up line keeps
// naming the address, and drops the password.
func TestPingRedisNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					c.Write([]byte("-ERR wrong password hunter2\r\n"))
				}
			}()
		}
	}()
	for _, tc := range []struct{ url, at string }{
		{"redis://:hunter2@" + ln.Addr().String() + "/0", ln.Addr().String()},
		{"redis-cluster://:hunter2@" + ln.Addr().String(), "cluster nodes " + ln.Addr().String()},
	} {
		opt, err := ParseURL(tc.url)
		require.NoError(t, err)
		rdb := opt.MakeRedisClient().(redis.UniversalClient)
		err = Ping(context.Background(), rdb, opt)
		rdb.Close()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "cannot reach Redis at "+tc.at+": ")
		assert.Contains(t, err.Error(), "xxxxx", "the answer is quoted, less the password")
		assert.NotContains(t, err.Error(), "hunter2")
	}
}

// A Redis that refuses INFO (here renamed away, as some managed services
// do; an ACL without +info alike) but answers PING still passes the
// start-up check: the product needs no INFO.
func TestPingRedisWithoutInfo(t *testing.T) {
	t.Parallel()
	server, err := exec.LookPath("redis-server")
	require.NoError(t, err, "redis-server (make test installs it)")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	ln.Close()
	cmd := exec.Command(server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--rename-command", "INFO", "")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	opt, err := ParseURL("redis://" + addr + "/0")
	require.NoError(t, err)
	rdb := opt.MakeRedisClient().(redis.UniversalClient)
	defer rdb.Close()
	require.Eventually(t, func() bool { return rdb.Ping(context.Background()).Err() == nil }, 10*time.Second, 50*time.Millisecond)
	require.Error(t, rdb.Info(context.Background(), "cluster").Err(), "INFO is refused")
	assert.NoError(t, Ping(context.Background(), rdb, opt))
}
