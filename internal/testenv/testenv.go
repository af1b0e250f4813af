// Package testenv gives each integration test its own pair of MariaDB
// databases (with the deploy/ schema) and its own asynq queue on the real
// Redis, so tests run in parallel. When MariaDB or Redis cannot be reached
// the test fails: a skipped integration test proves nothing.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/eshopbox/token-refresher/deploy"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// MySQLDSN is the server the tests use: TEST_MYSQL_DSN, or root on
// 127.0.0.1:3306 with no password.
func MySQLDSN() string {
	if v := os.Getenv("TEST_MYSQL_DSN"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/"
}

// RedisAddr is the Redis the tests use: TEST_REDIS_ADDR or 127.0.0.1:6379.
func RedisAddr() string {
	if v := os.Getenv("TEST_REDIS_ADDR"); v != "" {
		return v
	}
	return "127.0.0.1:6379"
}

// Env is one test's private slice of the real servers.
type Env struct {
	WMSDB, IEDB   string // database names
	WMSDSN, IEDSN string
	WMS, IE       *sqlx.DB
	Redis         *redis.Client
	RedisURL      string
	Queue         string
}

// New creates the test's databases and queue and drops them when it ends.
func New(t testing.TB) *Env {
	t.Helper()
	id := RandomID()
	e := &Env{WMSDB: "trt_" + id + "_wms", IEDB: "trt_" + id + "_ie", Queue: "t_" + id}

	root, err := sqlx.Open("mysql", MySQLDSN())
	if err != nil {
		t.Fatalf("testenv: TEST_MYSQL_DSN: %v", err)
	}
	t.Cleanup(func() { root.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := root.PingContext(ctx); err != nil {
		t.Fatalf("testenv: MariaDB at %s is not reachable (start it: bash .ci/run does): %v", MySQLDSN(), err)
	}
	if err := CreateDatabases(ctx, root, e.WMSDB, e.IEDB); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { DropDatabases(context.Background(), root, e.WMSDB, e.IEDB) })
	e.WMSDSN = dsnFor(t, e.WMSDB)
	e.IEDSN = dsnFor(t, e.IEDB)
	e.WMS = sqlx.MustOpen("mysql", e.WMSDSN)
	e.IE = sqlx.MustOpen("mysql", e.IEDSN)
	t.Cleanup(func() { e.WMS.Close(); e.IE.Close() })

	e.Redis = redis.NewClient(&redis.Options{Addr: RedisAddr()})
	if err := e.Redis.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis at %s is not reachable (start it: bash .ci/run does): %v", RedisAddr(), err)
	}
	e.RedisURL = "redis://" + RedisAddr() + "/0"
	t.Cleanup(func() {
		DropQueueKeys(context.Background(), e.Redis, e.Queue)
		e.Redis.Close()
	})
	return e
}

func dsnFor(t testing.TB, db string) string {
	dsn, err := DatabaseDSN(MySQLDSN(), db)
	if err != nil {
		t.Fatalf("testenv: TEST_MYSQL_DSN: %v", err)
	}
	return dsn
}

// RandomID returns 8 random hex characters.
func RandomID() string { return sharedenv.RandomID() }

// Row is one connection as the tests seed it: a channels row and an
// ie_appinstall_connection row.
type Row struct {
	ID              int64
	IntegrationType string  // default "16"
	Status          string  // channels.status, default "0"
	IsActive        string  // default "active"
	InputFields     *string // nil: NULL
	AccessToken     *string
	RefreshToken    *string
	ExpiresAt       *time.Time // nil: NULL
	// NoChannel leaves out the channels row.
	NoChannel bool
}

// Insert seeds rows.
func (e *Env) Insert(t testing.TB, rows ...Row) {
	t.Helper()
	for _, r := range rows {
		if r.IntegrationType == "" {
			r.IntegrationType = "16"
		}
		if r.Status == "" {
			r.Status = "0"
		}
		if r.IsActive == "" {
			r.IsActive = "active"
		}
		if !r.NoChannel {
			e.WMS.MustExec(`INSERT INTO channels (connectionId, integrationType, status) VALUES (?, ?, ?)`,
				r.ID, r.IntegrationType, r.Status)
		}
		var exp any
		if r.ExpiresAt != nil {
			exp = r.ExpiresAt.UTC().Truncate(time.Second)
		}
		e.IE.MustExec(`INSERT INTO ie_appinstall_connection
			(id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive) VALUES (?, ?, ?, ?, ?, ?)`,
			r.ID, r.InputFields, r.AccessToken, r.RefreshToken, exp, r.IsActive)
	}
}

// Stored is a connection row as read back.
type Stored struct {
	ID           int64      `db:"id"`
	InputFields  *string    `db:"inputFields"`
	AccessToken  *string    `db:"accessToken"`
	RefreshToken *string    `db:"refreshToken"`
	ExpiresAt    *time.Time `db:"accessTokenExpiryAt"`
	IsActive     string     `db:"isActive"`
}

// Get reads a connection row.
func (e *Env) Get(t testing.TB, id int64) Stored {
	t.Helper()
	var s Stored
	if err := e.IE.Get(&s, `SELECT id, inputFields, accessToken, refreshToken, accessTokenExpiryAt, isActive
		FROM ie_appinstall_connection WHERE id = ?`, id); err != nil {
		t.Fatalf("read connection %d: %v", id, err)
	}
	return s
}

// RedisDump returns every asynq key and value (this test's and any other), for secret
// checks.
func (e *Env) RedisDump(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	keys, err := e.Redis.Keys(ctx, "asynq:*").Result()
	if err != nil {
		t.Fatalf("redis keys: %v", err)
	}
	var b strings.Builder
	for _, k := range keys {
		typ, _ := e.Redis.Type(ctx, k).Result()
		fmt.Fprintf(&b, "%s (%s): ", k, typ)
		switch typ {
		case "string":
			v, _ := e.Redis.Get(ctx, k).Result()
			b.WriteString(v)
		case "hash":
			v, _ := e.Redis.HGetAll(ctx, k).Result()
			fmt.Fprint(&b, v)
		case "list":
			v, _ := e.Redis.LRange(ctx, k, 0, -1).Result()
			fmt.Fprint(&b, v)
		case "zset":
			v, _ := e.Redis.ZRange(ctx, k, 0, -1).Result()
			fmt.Fprint(&b, v)
		case "set":
			v, _ := e.Redis.SMembers(ctx, k).Result()
			fmt.Fprint(&b, v)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Str returns a pointer to s.
func Str(s string) *string { return &s }

// Time returns a pointer to t.
func Time(t time.Time) *time.Time { return &t }

// Logs is the test kit's synchronised buffer: what a process, a command's
// run() or a zap logger (Logger) writes, read by the test while it is
// written. Its zero value is ready to use.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a logger writing to l.
func (l *Logs) Logger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(l), zapcore.DebugLevel))
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Leases returns a connection-lease manager on the real Redis under a
// namespace of its own, for handler tests that need no databases.
func Leases(t testing.TB) *lease.Manager {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis at %s is not reachable (start it: bash .ci/run does): %v", RedisAddr(), err)
	}
	t.Cleanup(func() { rdb.Close() })
	return lease.New(rdb, "t_"+RandomID(), 0)
}

// RedisUnreachableIsOneLine checks a binary's start-up against a Redis that
// does not answer: it exits 1 with one line on standard error naming
// REDIS_URL and the address, nothing of go-redis's own before it, and never
// the URL's password. The binary runs as a process of its own (this test
// binary run again as main, the caller's test only), so that what go-redis
// prints to the process's standard error is seen too. settings, when not
// nil, returns the rest of the binary's settings (it runs in the test, not
// in the binary's process).
func RedisUnreachableIsOneLine(t *testing.T, main func(), settings func() []string) {
	if os.Getenv("TR_TEST_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		return
	}
	t.Parallel()
	var env []string
	if settings != nil {
		env = settings()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(append(os.Environ(), "TR_TEST_RUN_MAIN=1", "LOG_LEVEL=info"),
		append(env, "REDIS_URL=redis://:hunter2@127.0.0.1:1/0")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("exits non-zero: %v", err)
	}
	if exit.ExitCode() != 1 {
		t.Errorf("exit status %d, want 1", exit.ExitCode())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one line, got:\n%s", stderr.String())
	}
	if want := `"error":"REDIS_URL: cannot reach Redis at 127.0.0.1:1: `; !strings.Contains(lines[0], want) {
		t.Errorf("the line does not name REDIS_URL and the address: %s", lines[0])
	}
	if strings.Contains(stderr.String()+stdout.String(), "hunter2") {
		t.Errorf("the output holds the URL's password")
	}
}

// CreateIndexes creates the optional indexes of deploy/mysql/03-indexes.sql
// in the test's databases, so its scans read the due connections
// (internal/dueset) instead of walking the fleet.
func (e *Env) CreateIndexes(t testing.TB) {
	t.Helper()
	for _, st := range deploy.Indexes(e.WMSDB, e.IEDB) {
		if _, err := e.IE.Exec(st); err != nil {
			t.Fatalf("testenv: CreateIndexes: %v", err)
		}
	}
}
