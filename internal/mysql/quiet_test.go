package mysql_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// withDSN returns dsn changed by fn.
func withDSN(t *testing.T, dsn string, fn func(*driver.Config)) string {
	t.Helper()
	cfg, err := driver.ParseDSN(dsn)
	require.NoError(t, err)
	fn(cfg)
	return cfg.FormatDSN()
}

// work runs n scans and n load-and-save rounds at once, so the pool holds
// several connections, and returns the first error.
func work(s *mysql.Store, n int, round int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.ScanDue(context.Background(), "16", time.Now().Add(time.Hour), func([]token.DueConnection) error { return nil })
			errs <- err
		}()
		go func() {
			defer wg.Done()
			id := int64(i + 1)
			c, err := s.Load(context.Background(), id)
			if err == nil {
				err = s.Save(context.Background(), c, token.Token{AccessToken: fmt.Sprintf("at-%d-%d", id, round),
					ExpiresAt: time.Now().Add(time.Duration(round+1) * time.Hour)})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestIdleConnectionsClosedByServer — pass condition: when the server closes
// the pool's idle connections behind its back (here wait_timeout=1 on the
// store's own sessions, a system variable the driver sets per connection
// from the DSN; the shared server's global setting is untouched), the next
// scans and writes do not fail: no "invalid connection" reaches the caller.
func TestIdleConnectionsClosedByServer(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	const n = 4
	var rows []testenv.Row
	for i := int64(1); i <= n; i++ {
		rows = append(rows, testenv.Row{ID: i, InputFields: testenv.Str(`{}`), AccessToken: testenv.Str("old")})
	}
	env.Insert(t, rows...)
	short := func(c *driver.Config) {
		if c.Params == nil {
			c.Params = map[string]string{}
		}
		c.Params["wait_timeout"] = "1"
	}
	s, err := mysql.Open(context.Background(), withDSN(t, env.WMSDSN, short), withDSN(t, env.IEDSN, short), mysql.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	for round := range 3 {
		require.NoError(t, work(s, n, round), "round %d", round)
		// Past wait_timeout: the server has closed every idle connection.
		time.Sleep(2500 * time.Millisecond)
	}
	for i := int64(1); i <= n; i++ {
		assert.Equal(t, fmt.Sprintf("at-%d-2", i), *env.Get(t, i).AccessToken)
	}
}

// blackhole is a TCP proxy to MariaDB that, when switched on, keeps every
// connection open and accepts new ones but forwards nothing: no answer, no
// RST, as when a network path or a firewall silently drops packets.
type blackhole struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	on     bool
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b := &blackhole{ln: ln, target: target}
	var conns sync.WaitGroup
	t.Cleanup(func() { ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				b.serve(c)
			}()
		}
	}()
	return b
}

func (b *blackhole) set(on bool) {
	b.mu.Lock()
	b.on = on
	b.mu.Unlock()
}

func (b *blackhole) dropping() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.on
}

func (b *blackhole) serve(client net.Conn) {
	defer client.Close()
	if b.dropping() { // a new connection: accepted, then silence
		io.Copy(io.Discard, client)
		return
	}
	server, err := net.Dial("tcp", b.target)
	if err != nil {
		return
	}
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { b.pipe(server, client); done <- struct{}{} }()
	go func() { b.pipe(client, server); done <- struct{}{} }()
	<-done
}

// pipe copies src to dst, dropping what it reads while the hole is on.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !b.dropping() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// noHang runs fn and fails the test when it has not returned long after the
// store's deadline (a guard against a hang, not a timing assertion). It is
// shorter than the driver's 60s read timeout, so it is the context deadline
// that must end a silent call.
func noHang(t *testing.T, what string, fn func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s hung on a silent database", what)
		return nil
	}
}

// TestBlackholedDatabase — pass condition: when the database stops answering
// without closing anything, every read and write fails (within the store's
// query deadline, 1s here; the guard only catches a hang) rather than hang,
// including those that need a new connection; nothing stored is erased; and
// once the database answers again the same store works, with the write that
// failed done again.
func TestBlackholedDatabase(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	env.Insert(t, testenv.Row{ID: 1, InputFields: testenv.Str(`{}`), AccessToken: testenv.Str("seed"), RefreshToken: testenv.Str("rt")},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{}`)})
	cfg, err := driver.ParseDSN(env.IEDSN)
	require.NoError(t, err)
	hole := newBlackhole(t, cfg.Addr)
	via := func(c *driver.Config) { c.Addr = hole.ln.Addr().String() }
	s, err := mysql.Open(context.Background(), withDSN(t, env.WMSDSN, via), withDSN(t, env.IEDSN, via),
		mysql.Options{QueryTimeout: time.Second, MaxOpenConns: 4})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })

	ctx := context.Background()
	require.NoError(t, work(s, 2, 0)) // warm the pool: several idle connections
	c, err := s.Load(ctx, 1)
	require.NoError(t, err)

	hole.set(true)
	newTok := token.Token{AccessToken: "new", ExpiresAt: time.Now().Add(time.Hour)}
	calls := map[string]func() error{
		"ping": func() error { return s.Ping(ctx) },
		"load": func() error { _, err := s.Load(ctx, 1); return err },
		"save": func() error { return s.Save(ctx, c, newTok) },
		"scan": func() error {
			_, err := s.ScanDue(ctx, "16", time.Now(), func([]token.DueConnection) error { return nil })
			return err
		},
	}
	// Each twice: on a pooled connection, then on whatever the pool does
	// next (a new connection that gets no handshake).
	for range 2 {
		for name, fn := range calls {
			assert.Error(t, noHang(t, name, fn), "%s fails while the database is silent", name)
		}
	}
	row := env.Get(t, 1)
	assert.Equal(t, "at-1-0", *row.AccessToken, "a failed write erases nothing")

	hole.set(false)
	eventually := func(what string, fn func() error) {
		t.Helper()
		var err error
		for range 10 {
			if err = noHang(t, what, fn); err == nil {
				return
			}
		}
		t.Fatalf("%s does not work again after the database came back: %v", what, err)
	}
	eventually("ping", calls["ping"])
	// The first call after the silence works: the pool holds no connection
	// the silence broke.
	assert.NoError(t, calls["load"]())
	assert.NoError(t, calls["scan"]())
	require.NoError(t, calls["save"]())
	row = env.Get(t, 1)
	assert.Equal(t, "new", *row.AccessToken)
	assert.Equal(t, "rt", *row.RefreshToken, "the refresh token is kept")
}
