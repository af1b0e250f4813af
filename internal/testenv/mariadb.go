package testenv

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/procs"
)

// Private MariaDB servers, for the tests that must own a whole server: a
// read-only window (SET GLOBAL read_only), a crashed primary (Kill), a
// failover between two servers that replicate each other (Failover) and a
// DNS or VIP move in front of them (Proxy). Every other test shares the one
// server of New.

// Passwords of the users StartMariaDB creates beside root (which has none).
const (
	mariadbAppPassword  = "app-password"
	mariadbReplPassword = "repl-password"
)

// MariaDBOptions configures StartMariaDB. Its zero value is a lone server
// with server_id 1 and no binary log.
type MariaDBOptions struct {
	// ServerID is the server's server_id; 0 means 1. Each server of a
	// replication pair needs its own.
	ServerID int
	// Binlog turns on the binary log (log_bin, log_slave_updates,
	// binlog_format=ROW), which a server needs to be replicated from, in
	// either direction of a Failover.
	Binlog bool
	// TLS, when set, turns on TLS (--ssl-ca, --ssl-cert, --ssl-key). The
	// server still accepts plaintext connections (root's, among them).
	TLS *MariaDBTLS
}

// MariaDBTLS are the PEM files of a server's TLS: the CA that signs client
// certificates, and the server's certificate and key (NewTestCA makes
// them).
type MariaDBTLS struct {
	CA, Cert, Key string
}

// MariaDB is one private mariadbd, its data in the test's temporary
// directory, listening on 127.0.0.1 only. It has three users: root (no
// password, all privileges), app (password app-password, SELECT, INSERT,
// UPDATE, DELETE, CREATE, DROP, INDEX, ALTER and LOCK TABLES on *.* but no
// SUPER nor READ ONLY ADMIN, so read_only refuses its writes; the product's
// connections in a test use it) and repl (REPLICATION SLAVE, for
// ReplicateFrom).
type MariaDB struct {
	srv  *procs.MariaDB
	opts MariaDBOptions
}

// StartMariaDB initialises a data directory under t.TempDir() with
// mariadb-install-db and starts mariadbd on it, on a free 127.0.0.1 port,
// with --no-defaults and small buffers (32 MiB buffer pool, 16 MiB redo
// log), which start in well under a second and take about 60 MB of memory.
// Temporary tables go to a directory of the server's own. It returns once
// root can connect and the app and repl users exist (see MariaDB): about 1
// to 2 seconds on an idle machine, up to 5 on a busy one, most of it
// mariadb-install-db. t.Cleanup stops the server: SIGTERM, up to 10 seconds
// for it to exit, then SIGKILL. Should the test binary die first (a
// timeout's panic), Linux kills the server with it. The server is
// internal/procs's StartMariaDB, the one the bench starts too.
//
// When mariadbd or mariadb-install-db is not installed, the test fails with
// one line saying so: it is never skipped. When the server does not start
// within 60 seconds, or exits, the test fails with the tail of the server's
// error log. A port taken between its choice and the server's bind is
// retried on another port.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	return startMariaDB(t, opts, "mariadbd", "mariadb-install-db")
}

func startMariaDB(t testing.TB, opts MariaDBOptions, serverName, installName string) *MariaDB {
	t.Helper()
	if opts.ServerID == 0 {
		opts.ServerID = 1
	}
	dir := t.TempDir()
	args := []string{
		"--server-id=" + strconv.Itoa(opts.ServerID),
		"--innodb-log-buffer-size=4M",
		"--relay-log=" + filepath.Join(dir, "relay-bin"),
		"--skip-slave-start",
	}
	if opts.Binlog {
		args = append(args, "--log-bin="+filepath.Join(dir, "binlog"),
			"--log-slave-updates", "--binlog-format=ROW")
	}
	if opts.TLS != nil {
		args = append(args, "--ssl-ca="+opts.TLS.CA, "--ssl-cert="+opts.TLS.Cert, "--ssl-key="+opts.TLS.Key)
	}
	srv, err := procs.StartMariaDB(context.Background(), dir, procs.MariaDBOptions{
		Args: args, Server: serverName, Install: installName,
	})
	if err != nil {
		t.Fatalf("testenv: StartMariaDB: %v", err)
	}
	t.Cleanup(srv.Close)
	m := &MariaDB{srv: srv, opts: opts}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := m.Root().Conn(ctx)
	if err != nil {
		t.Fatalf("testenv: StartMariaDB: %v", err)
	}
	defer conn.Close()
	// The users are this server's own, kept out of its binary log: a
	// replica that replayed them would stop on users it has already.
	for _, st := range []string{
		"SET SESSION sql_log_bin = 0",
		"CREATE USER 'app'@'%' IDENTIFIED BY '" + mariadbAppPassword + "'",
		"CREATE USER 'app'@'localhost' IDENTIFIED BY '" + mariadbAppPassword + "'",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, LOCK TABLES ON *.* TO 'app'@'%'",
		"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, INDEX, ALTER, LOCK TABLES ON *.* TO 'app'@'localhost'",
		"CREATE USER 'repl'@'%' IDENTIFIED BY '" + mariadbReplPassword + "'",
		"GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%'",
		"SET SESSION sql_log_bin = 1",
	} {
		if _, err := conn.ExecContext(ctx, st); err != nil {
			t.Fatalf("testenv: StartMariaDB: %s: %v", st, err)
		}
	}
	return m
}

// Addr is the server's address, "127.0.0.1:port".
func (m *MariaDB) Addr() string { return m.srv.Addr() }

// Root is a pool of root's connections to the server, with no database
// selected. It is closed when the test ends.
func (m *MariaDB) Root() *sqlx.DB { return m.srv.Root() }

// RootDSN is a go-sql-driver DSN of root on the server, on database db (""
// for none), reading DATETIME columns as UTC time.Time.
func (m *MariaDB) RootDSN(db string) string { return m.srv.DSN("root", db) }

// AppDSN is RootDSN for the user app (password app-password), whose writes
// read_only refuses (MySQL error 1290).
func (m *MariaDB) AppDSN(db string) string { return m.srv.DSN("app:"+mariadbAppPassword, db) }

// CreateSchema creates a wms and an ie database of fresh random names
// (trt_<RandomID>_wms and trt_<RandomID>_ie) with the deploy/ schema, and
// returns their names. On a replication pair, call it on the primary once
// the replica replicates (ReplicateFrom): the databases reach the replica
// through the binary log. A failure fails the test.
func (m *MariaDB) CreateSchema(t testing.TB) (wms, ie string) {
	t.Helper()
	id := RandomID()
	wms, ie = "trt_"+id+"_wms", "trt_"+id+"_ie"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := CreateDatabases(ctx, m.Root(), wms, ie); err != nil {
		t.Fatalf("testenv: CreateSchema on %s: %v", m.Addr(), err)
	}
	return wms, ie
}

// SetReadOnly sets the server's global read_only: while on, every write of
// a user without SUPER or READ ONLY ADMIN (app), an UPDATE that matches no
// row or a SELECT ... FOR UPDATE included, fails with MySQL error 1290
// (ER_OPTION_PREVENTS_STATEMENT); root and the replication threads still
// write. Turning it on waits for the writes in progress; when that takes
// more than 10 seconds, or the statement fails, the test fails.
func (m *MariaDB) SetReadOnly(t testing.TB, on bool) {
	t.Helper()
	v := 0
	if on {
		v = 1
	}
	m.exec(t, "SetReadOnly", fmt.Sprintf("SET GLOBAL read_only = %d", v))
}

// Kill ends the server with SIGKILL, as a crashed primary, and waits (up to
// 10 seconds, or the test fails) for the process to exit. Its connections
// break; new ones are refused.
func (m *MariaDB) Kill(t testing.TB) {
	t.Helper()
	m.srv.Signal(syscall.SIGKILL)
	if !m.srv.WaitFor(10 * time.Second) {
		t.Fatalf("testenv: Kill: mariadbd on %s has not exited 10s after SIGKILL", m.Addr())
	}
}

// ReplicateFrom makes the server a replica of primary, by GTID
// (master_use_gtid=current_pos: from the beginning of primary's binary log
// for a server that has never written, from where its own binary log ends
// for a former primary), stopping first any replication it had. It returns
// once both replication threads run (Slave_IO_Running and
// Slave_SQL_Running are Yes); when they do not within 10 seconds, the test
// fails with the replica's last errors. primary must have been started with
// Binlog and a ServerID other than this server's. read_only is left as it
// is.
func (m *MariaDB) ReplicateFrom(t testing.TB, primary *MariaDB) {
	t.Helper()
	if !primary.opts.Binlog {
		t.Fatalf("testenv: ReplicateFrom: the primary %s was started without Binlog", primary.Addr())
	}
	if primary.opts.ServerID == m.opts.ServerID {
		t.Fatalf("testenv: ReplicateFrom: both servers have server_id %d", m.opts.ServerID)
	}
	m.exec(t, "ReplicateFrom", "STOP SLAVE")
	m.exec(t, "ReplicateFrom", fmt.Sprintf(`CHANGE MASTER TO MASTER_HOST = '127.0.0.1', MASTER_PORT = %d,
		MASTER_USER = 'repl', MASTER_PASSWORD = '%s', MASTER_CONNECT_RETRY = 1, MASTER_USE_GTID = current_pos`,
		primary.srv.Port(), mariadbReplPassword))
	m.exec(t, "ReplicateFrom", "START SLAVE")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.slaveStatus(t)
		if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: ReplicateFrom: %s does not replicate %s after 10s: Slave_IO_Running=%s Slave_SQL_Running=%s Last_IO_Error=%q Last_SQL_Error=%q",
				m.Addr(), primary.Addr(), st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StopReplication stops the server's replication and forgets its primary
// (STOP SLAVE; RESET SLAVE ALL). The GTID position it reached stays. A
// failure fails the test.
func (m *MariaDB) StopReplication(t testing.TB) {
	t.Helper()
	m.exec(t, "StopReplication", "STOP SLAVE")
	m.exec(t, "StopReplication", "RESET SLAVE ALL")
}

// WaitCaughtUp waits until this replica has applied every transaction of
// primary's binary log as it is when called (primary's gtid_binlog_pos,
// compared domain by domain with this server's gtid_current_pos), polling
// every 10ms. When timeout passes first, or replication stops on an error,
// the test fails with the positions and the replica's last errors.
func (m *MariaDB) WaitCaughtUp(t testing.TB, primary *MariaDB, timeout time.Duration) {
	t.Helper()
	want := primary.gtidPos(t, "gtid_binlog_pos")
	deadline := time.Now().Add(timeout)
	for {
		have := m.gtidPos(t, "gtid_current_pos")
		if gtidReached(have, want) {
			return
		}
		st := m.slaveStatus(t)
		if st["Last_SQL_Error"] != "" || time.Now().After(deadline) {
			t.Fatalf("testenv: WaitCaughtUp: %s is at %q, %s's binary log at %q (after %s): Slave_IO_Running=%s Slave_SQL_Running=%s Last_IO_Error=%q Last_SQL_Error=%q",
				m.Addr(), have, primary.Addr(), want, timeout,
				st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Failover promotes replica to primary the way an orchestrator does: old
// turns read-only, replica applies all of old's binary log (within 10
// seconds) and stops replicating, replica turns writable, and old, still
// up and read-only, replicates replica from where its own binary log ends.
// Both servers must have been started with Binlog and distinct ServerIDs,
// replica must replicate old, and old must be running (for a crashed
// primary, call replica.StopReplication and replica.SetReadOnly(false)).
// Connections open on old stay there, refused their writes (error 1290).
// A failure of any step fails the test.
func Failover(t testing.TB, old, replica *MariaDB) {
	t.Helper()
	if !old.opts.Binlog || !replica.opts.Binlog {
		t.Fatalf("testenv: Failover: both servers need Binlog (old %s: %v, replica %s: %v)",
			old.Addr(), old.opts.Binlog, replica.Addr(), replica.opts.Binlog)
	}
	old.SetReadOnly(t, true)
	replica.WaitCaughtUp(t, old, 10*time.Second)
	replica.StopReplication(t)
	replica.SetReadOnly(t, false)
	old.ReplicateFrom(t, replica)
}

func (m *MariaDB) exec(t testing.TB, what, st string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Root().ExecContext(ctx, st); err != nil {
		t.Fatalf("testenv: %s on %s: %s: %v", what, m.Addr(), strings.Join(strings.Fields(st), " "), err)
	}
}

// slaveStatus is SHOW SLAVE STATUS's row by column (empty when the server
// replicates nothing).
func (m *MariaDB) slaveStatus(t testing.TB) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := m.Root().QueryxContext(ctx, "SHOW SLAVE STATUS")
	if err != nil {
		t.Fatalf("testenv: SHOW SLAVE STATUS on %s: %v", m.Addr(), err)
	}
	defer rows.Close()
	st := map[string]string{}
	if rows.Next() {
		row := map[string]any{}
		if err := rows.MapScan(row); err != nil {
			t.Fatalf("testenv: SHOW SLAVE STATUS on %s: %v", m.Addr(), err)
		}
		for k, v := range row {
			switch v := v.(type) {
			case []byte:
				st[k] = string(v)
			case nil:
			default:
				st[k] = fmt.Sprint(v)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: SHOW SLAVE STATUS on %s: %v", m.Addr(), err)
	}
	return st
}

func (m *MariaDB) gtidPos(t testing.TB, variable string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var pos string
	if err := m.Root().GetContext(ctx, &pos, "SELECT @@GLOBAL."+variable); err != nil {
		t.Fatalf("testenv: @@%s on %s: %v", variable, m.Addr(), err)
	}
	return pos
}

// gtidReached reports whether GTID position have (domain-server-seq, comma
// separated) is at or past want in each of want's domains. Sequence numbers
// grow within a domain whichever server writes.
func gtidReached(have, want string) bool {
	seqs := func(pos string) map[string]uint64 {
		out := map[string]uint64{}
		for _, g := range strings.Split(pos, ",") {
			parts := strings.Split(strings.TrimSpace(g), "-")
			if len(parts) != 3 {
				continue
			}
			seq, _ := strconv.ParseUint(parts[2], 10, 64)
			out[parts[0]] = seq
		}
		return out
	}
	h := seqs(have)
	for domain, seq := range seqs(want) {
		if h[domain] < seq {
			return false
		}
	}
	return true
}

// Proxy is a TCP proxy in front of a MariaDB whose target can be switched,
// as a failover moves a DNS name or a virtual IP: connections accepted
// after Switch go to the new target, those already open stay with the old
// one.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string
	counts map[string]int
	conns  map[net.Conn]struct{}
	closed bool
}

// NewProxy listens on a free 127.0.0.1 port and forwards each connection to
// target (host:port). A listening failure fails the test. t.Cleanup closes
// the listener and every connection, and waits for the proxy's goroutines.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: NewProxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, counts: map[string]int{}, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address, "127.0.0.1:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// DSN is dsn (a go-sql-driver DSN) with its address replaced by the
// proxy's. A DSN that does not parse fails the test.
func (p *Proxy) DSN(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := driver.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("testenv: Proxy.DSN: %v", err)
	}
	cfg.Net = "tcp"
	cfg.Addr = p.Addr()
	return cfg.FormatDSN()
}

// Switch sends the connections accepted from now on to target (host:port);
// those already open are left as they are.
func (p *Proxy) Switch(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
}

// Connections is the number of connections accepted so far for target
// (host:port), whether or not the proxy could reach it.
func (p *Proxy) Connections(target string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[target]
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		target := p.target
		p.counts[target]++
		if !p.trackLocked(c) {
			p.mu.Unlock()
			continue
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.serve(c, target)
	}
}

// trackLocked records c as open, or closes it when the proxy is closed.
func (p *Proxy) trackLocked(c net.Conn) bool {
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) serve(client net.Conn, target string) {
	defer p.wg.Done()
	defer p.forget(client)
	server, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	ok := p.trackLocked(server)
	p.mu.Unlock()
	if !ok {
		return
	}
	defer p.forget(server)
	done := make(chan struct{})
	go func() {
		io.Copy(server, client)
		server.Close()
		client.Close()
		close(done)
	}()
	io.Copy(client, server)
	server.Close()
	client.Close()
	<-done
}

func (p *Proxy) forget(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}
