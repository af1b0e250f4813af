package sharedenv

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// MonitorLine is one command of Redis's MONITOR stream:
// +<time> [<db> <source>] "<command>" "<arg>"…
type MonitorLine struct {
	Source  string // the client's address, or "lua" for a script's command
	Command string // lower case, unquoted
	Arg     string // the first argument as the stream quotes it ("" when none)
}

// Monitor opens a MONITOR connection to the Redis at addr and calls each,
// from a goroutine of its own, for every command the stream shows, in
// order, until the returned connection is closed. It is the one reader of
// the stream the bench's Lua meter (internal/bench) and the e2e Redis-cost
// meter share.
func Monitor(addr string, each func(MonitorLine)) (net.Conn, error) {
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
	go func() {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if l, ok := parseMonitorLine(line); ok {
				each(l)
			}
		}
	}()
	return conn, nil
}

func parseMonitorLine(line string) (MonitorLine, bool) {
	open, closing := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
	if open < 0 || closing < open {
		return MonitorLine{}, false
	}
	_, source, _ := strings.Cut(line[open+1:closing], " ")
	fields := strings.SplitN(strings.TrimSpace(line[closing+1:]), " ", 3)
	l := MonitorLine{Source: source, Command: strings.ToLower(strings.Trim(fields[0], `"`))}
	if len(fields) > 1 {
		l.Arg = fields[1]
	}
	return l, true
}
