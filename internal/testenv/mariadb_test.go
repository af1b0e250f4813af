package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// requireError1290 checks that err is MariaDB's refusal of a write under
// read_only.
func requireError1290(t *testing.T, what string, err error) {
	t.Helper()
	var me *driver.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 {
		t.Fatalf("%s: got %v, want MySQL error 1290 (read_only)", what, err)
	}
}

func TestMariaDBReadOnlyRefusesTheAppUserOnly(t *testing.T) {
	t.Parallel()
	m := StartMariaDB(t, MariaDBOptions{})
	_, ie := m.CreateSchema(t)
	app, err := sqlx.Open("mysql", m.AppDSN(ie))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	ctx := context.Background()

	if _, err := app.ExecContext(ctx, `INSERT INTO ie_appinstall_connection (id, accessToken) VALUES (1, 'a')`); err != nil {
		t.Fatalf("app insert: %v", err)
	}
	update := func(db *sqlx.DB, token string) error {
		_, err := db.ExecContext(ctx, `UPDATE `+ie+`.ie_appinstall_connection SET accessToken = ? WHERE id = 1`, token)
		return err
	}
	if err := update(app, "b"); err != nil {
		t.Fatalf("app update: %v", err)
	}

	m.SetReadOnly(t, true)
	requireError1290(t, "app update under read_only", update(app, "c"))
	tx, err := app.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	requireError1290(t, "app SELECT ... FOR UPDATE under read_only",
		tx.QueryRowContext(ctx, `SELECT id FROM ie_appinstall_connection WHERE id = 1 FOR UPDATE`).Scan(&id))
	tx.Rollback()
	if err := update(m.Root(), "root"); err != nil {
		t.Fatalf("root update under read_only: %v", err)
	}

	m.SetReadOnly(t, false)
	if err := update(app, "d"); err != nil {
		t.Fatalf("app update after read_only: %v", err)
	}
	var token string
	if err := app.GetContext(ctx, &token, `SELECT accessToken FROM ie_appinstall_connection WHERE id = 1`); err != nil || token != "d" {
		t.Fatalf("accessToken = %q, %v; want d", token, err)
	}

	m.Kill(t)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := m.Root().PingContext(pctx); err == nil {
		t.Fatal("the killed server still answers")
	}
}

// A failover as production sees it through its DNS name: connections open
// on the old primary stay there and are refused their writes, new ones
// reach the new primary, whose writes flow back to the old one.
func TestMariaDBFailoverBehindAProxy(t *testing.T) {
	t.Parallel()
	a := StartMariaDB(t, MariaDBOptions{ServerID: 1, Binlog: true})
	b := StartMariaDB(t, MariaDBOptions{ServerID: 2, Binlog: true})
	b.ReplicateFrom(t, a)
	_, ie := a.CreateSchema(t)

	p := NewProxy(t, a.Addr())
	db, err := sql.Open("mysql", p.DSN(t, a.AppDSN(ie)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `INSERT INTO ie_appinstall_connection (id, accessToken) VALUES (1, 'from-a')`); err != nil {
		t.Fatalf("insert through the proxy: %v", err)
	}
	pinned, err := db.Conn(ctx) // the pool's one connection, to A
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()

	Failover(t, a, b)
	p.Switch(b.Addr())

	serverID := func(c *sql.Conn) int {
		t.Helper()
		var id int
		if err := c.QueryRowContext(ctx, `SELECT @@server_id`).Scan(&id); err != nil {
			t.Fatalf("@@server_id: %v", err)
		}
		return id
	}
	if id := serverID(pinned); id != 1 {
		t.Fatalf("the connection opened before the switch reaches server %d, want A (1)", id)
	}
	_, err = pinned.ExecContext(ctx, `UPDATE ie_appinstall_connection SET accessToken = 'stale' WHERE id = 1`)
	requireError1290(t, "update on the old primary", err)

	fresh, err := db.Conn(ctx) // no idle connection left: a new one, to B
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if id := serverID(fresh); id != 2 {
		t.Fatalf("a connection opened after the switch reaches server %d, want B (2)", id)
	}
	res, err := fresh.ExecContext(ctx, `UPDATE ie_appinstall_connection SET accessToken = 'from-b' WHERE id = 1`)
	if err != nil {
		t.Fatalf("update on the new primary: %v", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("update on the new primary changed %d rows, want 1 (the row replicated from A)", n)
	}

	Eventually(t, 5*time.Second, "B's update to replicate back to A", func() bool {
		var token string
		err := a.Root().GetContext(ctx, &token, `SELECT accessToken FROM `+ie+`.ie_appinstall_connection WHERE id = 1`)
		return err == nil && token == "from-b"
	})
	if na, nb := p.Connections(a.Addr()), p.Connections(b.Addr()); na != 1 || nb != 1 {
		t.Fatalf("proxy connections: A %d, B %d; want 1 and 1", na, nb)
	}
}

// fatalTB records a Fatal or a Skip and ends the goroutine as testing.T
// does; everything else goes to the real test.
type fatalTB struct {
	testing.TB
	mu      sync.Mutex
	fatal   string
	skipped bool
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fatalTB) Fatal(args ...any)                { f.Fatalf("%s", fmt.Sprint(args...)) }
func (f *fatalTB) Skipf(format string, args ...any) { f.skip() }
func (f *fatalTB) Skip(args ...any)                 { f.skip() }
func (f *fatalTB) SkipNow()                         { f.skip() }
func (f *fatalTB) skip() {
	f.mu.Lock()
	f.skipped = true
	f.mu.Unlock()
	runtime.Goexit()
}

// Without MariaDB installed, a test that needs a server fails with one
// line naming the missing program: it is not skipped.
func TestStartMariaDBFailsWithoutMariaDB(t *testing.T) {
	t.Parallel()
	f := &fatalTB{TB: t}
	done := make(chan *MariaDB)
	go func() {
		var m *MariaDB
		defer func() { done <- m }()
		m = startMariaDB(f, MariaDBOptions{}, "no-such-mariadbd", "mariadb-install-db")
	}()
	if m := <-done; m != nil {
		t.Fatal("StartMariaDB returned a server without mariadbd")
	}
	if f.skipped {
		t.Fatal("StartMariaDB skipped the test")
	}
	if !strings.Contains(f.fatal, "no-such-mariadbd") || strings.Contains(f.fatal, "\n") {
		t.Fatalf("want one line naming the missing program, got %q", f.fatal)
	}
}
