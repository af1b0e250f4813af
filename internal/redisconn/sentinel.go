package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// sentinelParams are the query parameters a redis-sentinel:// URL may carry.
// master, username and password are asynq's and go-redis's names; tls is
// ours (go-redis says TLS with the rediss scheme); the rest are go-redis's
// ParseFailoverURL names for the fields asynq's failover option has.
var sentinelParams = map[string]bool{
	"master": true, "username": true, "password": true, "db": true,
	"tls": true, "skip_verify": true,
	"dial_timeout": true, "read_timeout": true, "write_timeout": true, "pool_size": true,
}

// parseSentinelURL reads
//
//	redis-sentinel://[[SENTINEL_USER]:SENTINEL_PASSWORD@]host1:26379,host2:26379[/DB]?master=NAME[&username=USER][&password=MASTER_PASSWORD][&tls=true]
//
// into asynq's failover option, every field of it filled. The userinfo is the
// sentinels' credentials, as in asynq's documented form; the master's (and
// replicas') username and password are query parameters, as in go-redis's
// ParseFailoverURL, which does the parsing once the URL is rewritten in its
// form (redis[s]://sentinel1?addr=sentinel2&master_name=NAME). TLS
// (tls=true, or the scheme rediss-sentinel) applies to the sentinels and the
// master alike. A password with reserved characters must be percent-encoded.
//
// Its errors never repeat the URL or a value from it, which may hold a
// password: they name the part that is wrong.
func parseSentinelURL(u *url.URL) (asynq.RedisConnOpt, error) {
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("a redis-sentinel URL needs sentinel addresses (redis-sentinel://[:password@]host1:26379,host2:26379?master=NAME)")
	}
	q := u.Query()
	for k, vs := range q {
		if !sentinelParams[k] {
			return nil, fmt.Errorf("unknown redis-sentinel parameter %q (known: master, username, password, db, tls, skip_verify, dial_timeout, read_timeout, write_timeout, pool_size)", k)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("redis-sentinel parameter %q is given more than once", k)
		}
	}
	master := q.Get("master")
	if master == "" {
		return nil, errors.New("a redis-sentinel URL needs the master name (?master=NAME)")
	}
	g, err := goRedisForm(u, q, "redis-sentinel", "sentinel", map[string]string{"master": "master_name"})
	if err != nil {
		return nil, err
	}
	o, err := redis.ParseFailoverURL(g)
	if err != nil {
		// go-redis's message may quote a value; say only which kind of
		// part is wrong.
		return nil, errors.New(sentinelFault(err))
	}
	if o.DB < 0 {
		return nil, errors.New("database number is negative")
	}
	return asynq.RedisFailoverClientOpt{
		MasterName:       o.MasterName,
		SentinelAddrs:    o.SentinelAddrs,
		SentinelUsername: o.SentinelUsername,
		SentinelPassword: o.SentinelPassword,
		Username:         o.Username,
		Password:         o.Password,
		DB:               o.DB,
		DialTimeout:      o.DialTimeout,
		ReadTimeout:      o.ReadTimeout,
		WriteTimeout:     o.WriteTimeout,
		PoolSize:         o.PoolSize,
		TLSConfig:        o.TLSConfig,
	}, nil
}

// sentinelFault maps a ParseFailoverURL error to a message without values.
func sentinelFault(err error) string {
	msg := err.Error()
	for _, p := range []string{"dial_timeout", "read_timeout", "write_timeout", "pool_size", "skip_verify"} {
		if strings.Contains(msg, p) {
			return "redis-sentinel parameter " + p + " has an invalid value"
		}
	}
	if strings.Contains(msg, "database number") || strings.Contains(msg, "URL path") || strings.Contains(msg, " db ") {
		return "database number is not a whole number (…/DB)"
	}
	return "not a usable redis-sentinel URL (redis-sentinel://[:password@]host1:26379,host2:26379[/DB]?master=NAME&password=MASTER_PASSWORD)"
}
