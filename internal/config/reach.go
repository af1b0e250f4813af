package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisAddr is where a REDIS_URL points, for messages: "host:port", or the
// sentinels and master name of a redis-sentinel URL, or the nodes of a
// cluster. It never holds the password.
func RedisAddr(opt asynq.RedisConnOpt) string {
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

// PingRedis is the start-up check of REDIS_URL: nil when Redis answers a
// PING, else one line naming the setting and the address, such as
//
//	REDIS_URL: cannot reach Redis at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused
//
// as mysql.Open names WMS_DB_DSN. The password of the URL never appears in
// it, even if the server's answer were to quote it.
func PingRedis(ctx context.Context, rdb redis.UniversalClient, opt asynq.RedisConnOpt) error {
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	reason := err.Error()
	for _, p := range redisPasswords(opt) {
		if p != "" {
			reason = strings.ReplaceAll(reason, p, "xxxxx")
		}
	}
	return errors.New("REDIS_URL: cannot reach Redis at " + RedisAddr(opt) + ": " + reason)
}
