package bench

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// luaMeter follows a Redis server's MONITOR stream and counts the commands
// Lua scripts run ("[<db> lua]" lines): total_commands_processed counts
// them too (Redis 7), so the commands clients send are the total less
// these. A script's EVALSHA is one client command.
type luaMeter struct {
	conn net.Conn

	mu    sync.Mutex
	lua   int64
	marks map[string]int64 // mark → lua count when the stream showed it
}

// startLuaMeter opens a MONITOR connection to addr.
func startLuaMeter(addr string) (*luaMeter, error) {
	m := &luaMeter{marks: map[string]int64{}}
	conn, err := sharedenv.Monitor(addr, m.see)
	if err != nil {
		return nil, err
	}
	m.conn = conn
	return m, nil
}

func (m *luaMeter) see(l sharedenv.MonitorLine) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l.Source == "lua" {
		m.lua++
	} else if l.Command == "echo" && strings.HasPrefix(l.Arg, `"mark:`) {
		m.marks[strings.Trim(strings.TrimPrefix(l.Arg, `"mark:`), `"`)] = m.lua
	}
}

// count sends ECHO mark:<name> through rdb and returns the scripts'
// commands the stream showed before it: every command Redis ran before the
// ECHO, and none after.
func (m *luaMeter) count(ctx context.Context, rdb *redis.Client, name string) (int64, error) {
	if err := rdb.Echo(ctx, "mark:"+name).Err(); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		m.mu.Lock()
		n, ok := m.marks[name]
		m.mu.Unlock()
		if ok {
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("MONITOR never showed the mark %q", name)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (m *luaMeter) close() { m.conn.Close() }
