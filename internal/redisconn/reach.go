package redisconn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Addr is where a Redis URL points, for messages: "host:port", or the
// sentinels and master name of a redis-sentinel URL, or the nodes of a
// cluster. It never holds the password.
func Addr(opt asynq.RedisConnOpt) string {
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		return o.Addr
	case *asynq.RedisClientOpt:
		return o.Addr
	case asynq.RedisFailoverClientOpt:
		return fmt.Sprintf("master %q via sentinels %s", o.MasterName, strings.Join(o.SentinelAddrs, ","))
	case *asynq.RedisFailoverClientOpt:
		return fmt.Sprintf("master %q via sentinels %s", o.MasterName, strings.Join(o.SentinelAddrs, ","))
	case asynq.RedisClusterClientOpt:
		return strings.Join(o.Addrs, ",")
	case *asynq.RedisClusterClientOpt:
		return strings.Join(o.Addrs, ",")
	case ClusterOpt:
		return "cluster nodes " + strings.Join(o.Options.Addrs, ",")
	default:
		return "the configured address"
	}
}

// redisPasswords are the passwords an option holds, to be kept out of
// messages.
func redisPasswords(opt asynq.RedisConnOpt) []string {
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		return []string{o.Password}
	case *asynq.RedisClientOpt:
		return []string{o.Password}
	case asynq.RedisFailoverClientOpt:
		return []string{o.Password, o.SentinelPassword}
	case *asynq.RedisFailoverClientOpt:
		return []string{o.Password, o.SentinelPassword}
	case asynq.RedisClusterClientOpt:
		return []string{o.Password}
	case *asynq.RedisClusterClientOpt:
		return []string{o.Password}
	case ClusterOpt:
		return []string{o.Options.Password}
	}
	return nil
}

// redisPingTimeout bounds the start-up ping, dial retries included.
const redisPingTimeout = 10 * time.Second

// Ping is the start-up check of rdb, a client of opt: nil when Redis
// answers a PING, else one line naming the address, such as
//
//	cannot reach Redis at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused
//
// The password of the URL never appears in it, even if the server's answer
// were to quote it.
//
// A redis:// or redis-sentinel:// URL that reaches a node of a Redis
// Cluster is refused too (it would answer MOVED for most keys): the line
// says to use redis-cluster://.
func Ping(ctx context.Context, rdb redis.UniversalClient, opt asynq.RedisConnOpt) error {
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	if err := Ready(ctx, rdb); err != nil {
		return Unreachable(opt, err)
	}
	if _, cluster := rdb.(*redis.ClusterClient); !cluster {
		// A server whose ACL or rename-command withholds INFO (some
		// managed Redis services do) is taken as it answers: the
		// product needs no INFO, and must not stop starting for it.
		info, err := rdb.Info(ctx, "cluster").Result()
		if err == nil && strings.Contains(info, "cluster_enabled:1") {
			return errors.New(Addr(opt) + " is a node of a Redis Cluster: use redis-cluster://host1:port,host2:port,…")
		}
	}
	return nil
}

// Unreachable is err, met on the Redis of opt, as one line naming the
// address, the URL's passwords blanked out even where the server's answer
// quotes them.
func Unreachable(opt asynq.RedisConnOpt, err error) error {
	reason := err.Error()
	for _, p := range redisPasswords(opt) {
		if p != "" {
			reason = strings.ReplaceAll(reason, p, "xxxxx")
		}
	}
	return errors.New("cannot reach Redis at " + Addr(opt) + ": " + reason)
}

// Ready is the readiness check of asynq's Redis (/readyz): a PING
// answered by the server, or on a Redis Cluster by every master the client
// knows of. Any live node answers a PING, but while a master is down its
// slots (some of the scan queues, or the queue's leases and limiter) refuse
// every command, until its replica is promoted and the client rereads the
// slot map (ClusterStateReload).
func Ready(ctx context.Context, rdb redis.UniversalClient) error {
	if c, ok := rdb.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error { return m.Ping(ctx).Err() })
	}
	return rdb.Ping(ctx).Err()
}
