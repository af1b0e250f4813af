package config

import (
	"context"
	"net"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRedisAddr(t *testing.T) {
	t.Parallel()
	opt, err := parseRedisURL("redis://:hunter2@10.0.0.5:6380/3")
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.5:6380", RedisAddr(opt))
	assert.Equal(t, `master "mymaster" via sentinels s1:26379,s2:26379`,
		RedisAddr(asynq.RedisFailoverClientOpt{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379"}, Password: "hunter2"}))
	assert.Equal(t, "n1:7000,n2:7000", RedisAddr(asynq.RedisClusterClientOpt{Addrs: []string{"n1:7000", "n2:7000"}}))
	opt, err = parseRedisURL("redis-cluster://:hunter2@n1:7000,n2:7000")
	require.NoError(t, err)
	assert.Equal(t, "cluster nodes n1:7000,n2:7000", RedisAddr(opt))
}

// A server whose answer quotes the password: the start-up line keeps
// naming the setting and the address, and drops the password.
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
		opt, err := parseRedisURL(tc.url)
		require.NoError(t, err)
		rdb := opt.MakeRedisClient().(redis.UniversalClient)
		err = PingRedis(context.Background(), rdb, opt)
		rdb.Close()
		require.Error(t, err)
		assert.Contains(t, err.Error(), "REDIS_URL: cannot reach Redis at "+tc.at+": ")
		assert.Contains(t, err.Error(), "xxxxx", "the answer is quoted, less the password")
		assert.NotContains(t, err.Error(), "hunter2")
	}
}
