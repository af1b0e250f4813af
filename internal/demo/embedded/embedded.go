// Package embedded starts the demo's stand-ins for MySQL and Redis inside the
// process: go-mysql-server (an in-memory, MySQL-compatible engine) served on a
// loopback port, so the production go-sql-driver store talks to it over the
// MySQL wire protocol, and miniredis, on which asynq runs unchanged.
//
// Only the demo imports this package: the scanner and refresher binaries must
// not carry either engine (a test checks their build info).
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	sqle "github.com/dolthub/go-mysql-server"
	"github.com/dolthub/go-mysql-server/memory"
	"github.com/dolthub/go-mysql-server/server"
	"github.com/dolthub/go-mysql-server/sql"
	"github.com/dolthub/vitess/go/mysql"
	"github.com/dolthub/vitess/go/sqltypes"
	querypb "github.com/dolthub/vitess/go/vt/proto/query"
	driver "github.com/go-sql-driver/mysql"
	"github.com/sirupsen/logrus"
)

// User is the account of the embedded MySQL. It has no password: the engine
// runs without user accounts and listens on loopback only.
const User = "root"

// MySQL is a running in-memory MySQL-compatible server.
type MySQL struct {
	srv  *server.Server
	addr string
	done chan error
}

// StartMySQL serves an empty in-memory engine on a free loopback port.
// Databases are created with SQL (CREATE DATABASE), as on a real server.
// logs receives the engine's own log lines (it logs through logrus); queries
// are never logged, since the demo's inserts carry credentials.
func StartMySQL(logs io.Writer) (*MySQL, error) {
	engineMu.Lock()
	defer engineMu.Unlock()
	engineLogs.use(logs)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("embedded MySQL: %w", err)
	}
	pro := memory.NewDBProvider()
	engine := sqle.NewDefault(pro)
	cfg := server.Config{
		Protocol:          "tcp",
		Address:           ln.Addr().String(),
		Listener:          ln,
		MaxLoggedQueryLen: -1, // never log query text
		ConnReadTimeout:   time.Hour,
		ConnWriteTimeout:  time.Hour,
	}
	srv, err := server.NewServerWithHandler(cfg, engine, sql.NewContext, memory.NewSessionBuilder(pro), nil, serialize)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("embedded MySQL: %w", err)
	}
	m := &MySQL{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { m.done <- srv.Start() }()
	return m, nil
}

// serialize makes the engine run one statement at a time. go-mysql-server's
// in-memory tables are not safe for concurrent writes: each session copies
// the table, changes its copy and puts it back at commit, so two UPDATEs of
// different rows from two connections at once lose one of them, while both
// report one row affected (seen: 245 of 980 concurrent single-row UPDATEs
// lost; the project's README says to keep DML to one goroutine). The refresher
// writes from several workers, so the server admits one statement at a time;
// the production store is unchanged.
//
// The lock is the process's, not the server's: the engine also keeps
// process-wide state (status variables) that it updates without a lock when
// an engine is built, a client connects or a statement runs, so two embedded
// servers in one process (parallel tests) take turns too.
func serialize(h mysql.Handler) (mysql.Handler, error) {
	return &serialHandler{Handler: h, mu: &engineMu}, nil
}

var engineMu sync.Mutex

// engineLogs is where the process-wide logrus logger writes, which
// go-mysql-server logs through. The logger's output is set once: logrus reads
// it without a lock when it first formats a line, so setting it again while an
// earlier server logs (parallel tests start several) is a data race. Each
// server start points the one sink at its own writer instead.
var engineLogs = &logSink{}

type logSink struct {
	once sync.Once
	mu   sync.Mutex
	w    io.Writer
}

func (s *logSink) use(w io.Writer) {
	s.once.Do(func() {
		logrus.SetOutput(s)
		logrus.SetLevel(logrus.WarnLevel)
		// JSON lines in the components' own keys, so the demo's log file
		// holds JSON only; Write names the engine in each.
		logrus.SetFormatter(&logrus.JSONFormatter{
			TimestampFormat: time.RFC3339Nano,
			FieldMap: logrus.FieldMap{
				logrus.FieldKeyTime: "time", logrus.FieldKeyLevel: "level", logrus.FieldKeyMsg: "msg",
			},
		})
	})
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	if len(p) > 0 && p[0] == '{' {
		line := append([]byte(`{"logger":"go-mysql-server",`), p[1:]...)
		if _, err := s.w.Write(line); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return s.w.Write(p)
}

type serialHandler struct {
	mysql.Handler
	mu *sync.Mutex
}

func (h *serialHandler) NewConnection(c *mysql.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Handler.NewConnection(c)
}

func (h *serialHandler) ConnectionClosed(c *mysql.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.Handler.ConnectionClosed(c)
}

func (h *serialHandler) ComInitDB(c *mysql.Conn, schemaName string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComInitDB(c, schemaName)
}

func (h *serialHandler) ComQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComQuery(ctx, c, query, callback)
}

func (h *serialHandler) ComMultiQuery(ctx context.Context, c *mysql.Conn, query string, callback mysql.ResultSpoolFn) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComMultiQuery(ctx, c, query, callback)
}

func (h *serialHandler) ComPrepare(ctx context.Context, c *mysql.Conn, query string, prepare *mysql.PrepareData) ([]*querypb.Field, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComPrepare(ctx, c, query, prepare)
}

func (h *serialHandler) ComStmtExecute(ctx context.Context, c *mysql.Conn, prepare *mysql.PrepareData, callback func(*sqltypes.Result) error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComStmtExecute(ctx, c, prepare, callback)
}

func (h *serialHandler) ComResetConnection(c *mysql.Conn) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.Handler.ComResetConnection(c)
}

// Addr is the host:port the server listens on.
func (m *MySQL) Addr() string { return m.addr }

// DSN returns a go-sql-driver DSN of database db on the server ("" for no
// database).
func (m *MySQL) DSN(db string) string {
	cfg := driver.NewConfig()
	cfg.User = User
	cfg.Net = "tcp"
	cfg.Addr = m.addr
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg.FormatDSN()
}

// Close stops the server; the data is gone.
func (m *MySQL) Close() error {
	err := m.srv.Close()
	select {
	case serr := <-m.done:
		if serr != nil && !errors.Is(serr, net.ErrClosed) {
			err = errors.Join(err, serr)
		}
	case <-time.After(5 * time.Second):
	}
	return err
}

// Redis is a running in-process Redis (miniredis).
type Redis struct {
	mr *miniredis.Miniredis
}

// StartRedis serves an empty miniredis on a free loopback port. Keys expire
// with the wall clock, as on a real Redis (miniredis's default is to let TTLs
// pass only when a test says so).
func StartRedis() (*Redis, error) {
	mr := miniredis.NewMiniRedis()
	mr.ClockTTL(true)
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("embedded Redis: %w", err)
	}
	return &Redis{mr: mr}, nil
}

// Addr is the host:port the server listens on.
func (r *Redis) Addr() string { return r.mr.Addr() }

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return "redis://" + r.mr.Addr() + "/0" }

// Close stops the server; the data is gone.
func (r *Redis) Close() { r.mr.Close() }
