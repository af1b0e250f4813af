package procs

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a private redis-server on 127.0.0.1, empty and without
// persistence (--save "" --appendonly no).
type Redis struct {
	*Proc
	Addr string // "127.0.0.1:port"
	log  string // its standard output and error
}

// StartRedis starts redis-server on port (0: a free one, retried on
// another should it be taken before the server binds it) with its working
// folder dir and args after the common options, and returns once it
// answers PING (within 20 seconds) or with the end of its output. Close
// stops it.
func StartRedis(ctx context.Context, dir string, port int, args ...string) (*Redis, error) {
	server, err := Program("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed (apt-get install redis-server): %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			if p, err = FreePort(); err != nil {
				return nil, err
			}
		}
		r := &Redis{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), log: filepath.Join(dir, "redis.out")}
		if err = r.spawn(ctx, server, dir, p, args); err == nil {
			return r, nil
		}
		if tail := FileTail(r.log, 1500); port == 0 && attempt < 5 && strings.Contains(tail, "Address already in use") {
			continue
		} else {
			return nil, fmt.Errorf("redis-server on %s: %w; its output:\n%s", r.Addr, err, tail)
		}
	}
}

func (r *Redis) spawn(ctx context.Context, server, dir string, port int, args []string) error {
	out, err := os.Create(r.log)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	all := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
		"--logfile", "",
	}, args...)
	if r.Proc, err = Start("redis-server", server, all, nil, out); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if !r.Running() || time.Now().After(deadline) || ctx.Err() != nil {
			r.Stop(10 * time.Second)
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the server (SIGTERM, then SIGKILL after 10 seconds). It does
// nothing on a nil Redis.
func (r *Redis) Close() {
	if r != nil && r.Proc != nil {
		r.Stop(10 * time.Second)
	}
}
