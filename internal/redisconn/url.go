// Package redisconn is the product's connection to asynq's Redis: a Redis
// URL read into asynq's connection option (one Redis, Sentinel or a Redis
// Cluster), and the checks of the client made from it: the start-up ping
// and the readiness check (/readyz). Its errors name the address, never a
// password, and no setting: the binaries say which setting the URL came
// from (internal/startup).
package redisconn

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/hibiken/asynq"
)

// ParseURL accepts redis://, rediss://, redis-sentinel://,
// rediss-sentinel://, redis-cluster:// and rediss-cluster:// URLs
// (sentinel.go and cluster.go read the last four). Its errors
// never repeat the URL, which may hold a password.
func ParseURL(s string) (asynq.RedisConnOpt, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a valid URL (redis://[:password@]host:port/db)")
	}
	switch u.Scheme {
	case "redis", "rediss":
	case "redis-sentinel", "rediss-sentinel":
		return parseSentinelURL(u)
	case "redis-cluster", "rediss-cluster":
		return parseClusterURL(u)
	default:
		return nil, fmt.Errorf("scheme %q is not redis, rediss, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", u.Scheme)
	}
	opt, err := asynq.ParseRedisURI(s)
	if err != nil {
		return nil, errors.New("not a usable Redis URL (redis://[:password@]host:port/db)")
	}
	return opt, nil
}
