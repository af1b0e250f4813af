package redisconn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// clusterParams are the query parameters a redis-cluster:// URL may carry:
// tls as in a redis-sentinel URL, the rest go-redis's ParseClusterURL
// names (it has no skip_verify).
var clusterParams = map[string]bool{
	"tls":          true,
	"dial_timeout": true, "read_timeout": true, "write_timeout": true, "max_redirects": true,
}

// parseClusterURL reads
//
//	redis-cluster://[[USER]:PASSWORD@]host1:6379,host2:6379,…[?tls=true&dial_timeout=5s&…]
//
// into go-redis's cluster options (ClusterOpt). The
// addresses are seeds: any reachable node tells the client the rest of the
// cluster. The userinfo is the nodes' credentials. go-redis's
// ParseClusterURL does the parsing once the URL is rewritten in its form
// (redis[s]://node1?addr=node2&addr=node3). TLS is tls=true or the scheme
// rediss-cluster. A cluster has no database number: a path is refused. A
// password with reserved characters must be percent-encoded.
//
// Its errors never repeat the URL or a value from it, which may hold a
// password: they name the part that is wrong.
func parseClusterURL(u *url.URL) (asynq.RedisConnOpt, error) {
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("a redis-cluster URL needs node addresses (redis-cluster://[:password@]host1:6379,host2:6379)")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("a redis-cluster URL has no database number (a cluster has database 0 only)")
	}
	q := u.Query()
	for k, vs := range q {
		if !clusterParams[k] {
			return nil, fmt.Errorf("unknown redis-cluster parameter %q (known: tls, dial_timeout, read_timeout, write_timeout, max_redirects)", k)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("redis-cluster parameter %q is given more than once", k)
		}
	}
	g, err := goRedisForm(u, q, "redis-cluster", "node", nil)
	if err != nil {
		return nil, err
	}
	o, err := redis.ParseClusterURL(g)
	if err != nil {
		return nil, errors.New(clusterFault(err))
	}
	o.ClusterStateReloadInterval = ClusterStateReload
	return ClusterOpt{Options: o}, nil
}

// ClusterStateReload is how often a cluster client rereads the cluster's
// slot map (go-redis's ClusterStateReloadInterval, 60s by default). go-redis
// rereads it at once on a MOVED or ASK answer, but not when a master stops
// answering: until the next reload, commands for that master's slots go to
// its dead address although its replica was promoted (the fault suite's
// TestClusterHarness measured 56s of refused connections after a promotion
// with the default). A reload is one CLUSTER SLOTS, made only by a client in
// use.
const ClusterStateReload = 5 * time.Second

// ClusterOpt is a Redis Cluster's URL as go-redis's own cluster
// options: an asynq.RedisConnOpt whose client is a *redis.ClusterClient,
// the type asynq and asynqmon tell a cluster by. asynq's
// RedisClusterClientOpt would leave ClusterStateReload at go-redis's
// default.
type ClusterOpt struct {
	Options *redis.ClusterOptions
}

var _ asynq.RedisConnOpt = ClusterOpt{}

// MakeRedisClient implements asynq.RedisConnOpt: a new cluster client on a
// copy of the options (go-redis fills defaults into the options it gets).
func (o ClusterOpt) MakeRedisClient() any {
	opt := *o.Options
	opt.Addrs = append([]string(nil), o.Options.Addrs...)
	return redis.NewClusterClient(&opt)
}

// goRedisForm rewrites a redis-sentinel or redis-cluster URL u (of
// scheme kind, whose query q was checked against its known parameters) in
// the form go-redis's ParseFailoverURL and ParseClusterURL read:
// redis[s]://userinfo@host1/path?addr=host2&addr=host3&…, with every
// parameter but tls passed on, under the names rename gives (go-redis's
// names where ours differ). what names an address in errors ("sentinel",
// "node"). TLS is the scheme rediss-… or tls=true; skip_verify needs it.
func goRedisForm(u *url.URL, q url.Values, kind, what string, rename map[string]string) (string, error) {
	addrs, err := hostPorts(u.Host, what)
	if err != nil {
		return "", err
	}
	useTLS := u.Scheme == "rediss"+strings.TrimPrefix(kind, "redis")
	if v := q.Get("tls"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", fmt.Errorf("%s parameter tls is not true or false", kind)
		}
		useTLS = useTLS || b
	}
	if q.Has("skip_verify") && !useTLS {
		return "", fmt.Errorf("%s parameter skip_verify needs tls=true", kind)
	}
	g := url.URL{Scheme: "redis", User: u.User, Host: addrs[0], Path: u.Path}
	if useTLS {
		g.Scheme = "rediss"
	}
	gq := url.Values{}
	for _, a := range addrs[1:] {
		gq.Add("addr", a)
	}
	for k, vs := range q {
		if k == "tls" {
			continue
		}
		if n, ok := rename[k]; ok {
			k = n
		}
		gq[k] = vs
	}
	g.RawQuery = gq.Encode()
	return g.String(), nil
}

// hostPorts splits the comma-separated host:port list of a sentinel or
// cluster URL; what names each address in errors ("sentinel", "node").
func hostPorts(hosts, what string) ([]string, error) {
	var addrs []string
	for i, a := range strings.Split(hosts, ",") {
		h, p, err := net.SplitHostPort(a)
		if err != nil || h == "" || p == "" {
			return nil, fmt.Errorf("%s address %d is not host:port", what, i+1)
		}
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s address %d has no valid port", what, i+1)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// clusterFault maps a ParseClusterURL error to a message without values.
func clusterFault(err error) string {
	msg := err.Error()
	for _, p := range []string{"dial_timeout", "read_timeout", "write_timeout", "max_redirects"} {
		if strings.Contains(msg, p) {
			return "redis-cluster parameter " + p + " has an invalid value"
		}
	}
	return "not a usable redis-cluster URL (redis-cluster://[:password@]host1:6379,host2:6379)"
}
