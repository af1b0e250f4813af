package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 1<<20)
	line, err := br.ReadString('\n')
	if err != nil || line != "+OK\r\n" {
		conn.Close()
		return nil, fmt.Errorf("MONITOR answered %q: %v", line, err)
	}
	m := &luaMeter{conn: conn, marks: map[string]int64{}}
	go m.follow(br)
	return m, nil
}

func (m *luaMeter) follow(br *bufio.Reader) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		open, closing := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
		if open < 0 || closing < open {
			continue
		}
		_, source, _ := strings.Cut(line[open+1:closing], " ")
		m.mu.Lock()
		if source == "lua" {
			m.lua++
		} else if i := strings.Index(line, `"mark:`); i >= 0 && strings.Contains(strings.ToLower(line[closing:]), `"echo"`) {
			name, _, _ := strings.Cut(line[i+len(`"mark:`):], `"`)
			m.marks[name] = m.lua
		}
		m.mu.Unlock()
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
