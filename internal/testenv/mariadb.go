package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/sharedenv"
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
	dir  string
	opts MariaDBOptions
	port int
	root *sqlx.DB

	proc   *os.Process
	exited chan struct{} // closed when the process has exited
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
// timeout's panic), Linux kills the server with it.
//
// When mariadbd or mariadb-install-db is not installed, the test fails with
// one line saying so: it is never skipped. When the server does not start
// within 30 seconds, or exits, the test fails with the tail of the server's
// error log. A port taken between its choice and the server's bind is
// retried on another port.
func StartMariaDB(t testing.TB, opts MariaDBOptions) *MariaDB {
	t.Helper()
	return startMariaDB(t, opts, "mariadbd", "mariadb-install-db")
}

func startMariaDB(t testing.TB, opts MariaDBOptions, serverName, installName string) *MariaDB {
	t.Helper()
	server, err := findProgram(serverName)
	if err != nil {
		t.Fatalf("testenv: StartMariaDB needs %s, which is not installed (apt-get install mariadb-server): %v", serverName, err)
	}
	install, err := findProgram(installName)
	if err != nil {
		t.Fatalf("testenv: StartMariaDB needs %s, which is not installed (apt-get install mariadb-server): %v", installName, err)
	}
	if opts.ServerID == 0 {
		opts.ServerID = 1
	}
	m := &MariaDB{dir: t.TempDir(), opts: opts}
	// A Unix socket's path holds at most 107 bytes; a long test name under
	// a long TMPDIR can make the temporary directory's longer than that.
	sockDir := m.dir
	if len(filepath.Join(sockDir, "sock")) > 100 {
		d, err := os.MkdirTemp("/tmp", "mdb")
		if err != nil {
			t.Fatalf("testenv: StartMariaDB: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		sockDir = d
	}

	// A directory of its own for temporary tables: mariadbd deletes every
	// #sql* file of its tmpdir when it starts, other servers' tables in
	// /tmp included (those of concurrent mariadb-install-db runs, those of
	// the shared server).
	data, tmp := filepath.Join(m.dir, "data"), filepath.Join(m.dir, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatalf("testenv: StartMariaDB: %v", err)
	}
	out, err := exec.Command(install, "--no-defaults", "--datadir="+data, "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M").CombinedOutput()
	if err != nil {
		// The cause is at the start; the rest is the script's advice.
		t.Fatalf("testenv: StartMariaDB: %s: %v: %s", installName, err, firstLines(string(out), 8))
	}

	errLog := filepath.Join(m.dir, "err.log")
	for attempt := 1; ; attempt++ {
		m.port = freePort(t)
		args := []string{
			"--no-defaults",
			"--datadir=" + data,
			"--tmpdir=" + tmp,
			"--port=" + strconv.Itoa(m.port),
			"--bind-address=127.0.0.1",
			"--socket=" + filepath.Join(sockDir, "sock"),
			"--pid-file=" + filepath.Join(m.dir, "pid"),
			"--log-error=" + errLog,
			"--server-id=" + strconv.Itoa(opts.ServerID),
			"--skip-name-resolve",
			"--character-set-server=utf8mb4", // as the shared server (Debian's configuration)
			"--collation-server=utf8mb4_general_ci",
			"--innodb-buffer-pool-size=32M",
			"--innodb-log-file-size=16M",
			"--innodb-log-buffer-size=4M",
			"--aria-pagecache-buffer-size=8M", // 128M by default, allocated at start
			"--key-buffer-size=1M",
			"--performance-schema=OFF",
			// Commits reach the OS at once and the disk within a second: a
			// SIGKILL (Kill) loses nothing, only a crash of the machine would.
			"--innodb-flush-log-at-trx-commit=2",
			"--relay-log=" + filepath.Join(m.dir, "relay-bin"),
			"--skip-slave-start",
		}
		if opts.Binlog {
			args = append(args, "--log-bin="+filepath.Join(m.dir, "binlog"),
				"--log-slave-updates", "--binlog-format=ROW")
		}
		if opts.TLS != nil {
			args = append(args, "--ssl-ca="+opts.TLS.CA, "--ssl-cert="+opts.TLS.Cert, "--ssl-key="+opts.TLS.Key)
		}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root") // mariadbd refuses to run as root without it
		}
		os.Remove(errLog)
		err := m.spawn(t, server, args)
		if err == nil {
			break
		}
		tail := readTail(errLog, 20)
		if attempt < 5 && strings.Contains(tail, "Address already in use") {
			continue
		}
		// What mariadbd says before it opens its error log (a bad
		// option) goes to its standard error.
		if b, _ := os.ReadFile(filepath.Join(m.dir, "mariadbd.out")); len(b) > 0 {
			tail += "\nits standard error:\n" + lastLines(string(b), 10)
		}
		t.Fatalf("testenv: StartMariaDB: mariadbd on 127.0.0.1:%d: %v; the end of its error log %s:\n%s", m.port, err, errLog, tail)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := m.root.Conn(ctx)
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

// spawn starts mariadbd with args and waits until root can connect. When
// it returns nil, m.proc, m.exited and m.root are set and t.Cleanup stops
// the server; otherwise the process has exited (or been killed).
func (m *MariaDB) spawn(t testing.TB, server string, args []string) error {
	out, err := os.Create(filepath.Join(m.dir, "mariadbd.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	exited := make(chan struct{})
	started := make(chan *os.Process, 1)
	startErr := make(chan error, 1)
	go func() {
		// The server gets SIGKILL when the thread that started it ends,
		// so that a test binary that dies (a timeout's panic) leaves no
		// server behind; the thread is this goroutine's until the server
		// has exited.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(server, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = sharedenv.KillWithParent()
		if err := cmd.Start(); err != nil {
			startErr <- err
			close(exited)
			return
		}
		started <- cmd.Process
		cmd.Wait()
		close(exited)
	}()
	select {
	case err := <-startErr:
		return err
	case m.proc = <-started:
	}
	m.exited = exited

	root, err := sqlx.Open("mysql", m.RootDSN(""))
	if err != nil {
		m.stop()
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = root.PingContext(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-exited:
			root.Close()
			return errors.New("the server exited while starting")
		default:
		}
		if time.Now().After(deadline) {
			root.Close()
			m.stop()
			return fmt.Errorf("root cannot connect after 30s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.root = root
	t.Cleanup(func() {
		root.Close()
		m.stop()
	})
	return nil
}

// stop ends the server (SIGTERM, then SIGKILL after 10 seconds) and waits
// for it to exit.
func (m *MariaDB) stop() { sharedenv.Stop(m.proc, m.exited) }

// Addr is the server's address, "127.0.0.1:port".
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// Root is a pool of root's connections to the server, with no database
// selected. It is closed when the test ends.
func (m *MariaDB) Root() *sqlx.DB { return m.root }

// RootDSN is a go-sql-driver DSN of root on the server, on database db (""
// for none), reading DATETIME columns as UTC time.Time.
func (m *MariaDB) RootDSN(db string) string { return m.dsn("root", db) }

// AppDSN is RootDSN for the user app (password app-password), whose writes
// read_only refuses (MySQL error 1290).
func (m *MariaDB) AppDSN(db string) string { return m.dsn("app:"+mariadbAppPassword, db) }

func (m *MariaDB) dsn(user, db string) string {
	dsn, err := DatabaseDSN(user+"@tcp("+m.Addr()+")/", db)
	if err != nil {
		panic(err) // the DSN is this file's own
	}
	return dsn
}

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
	if err := CreateDatabases(ctx, m.root, wms, ie); err != nil {
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
	m.proc.Kill()
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
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
		primary.port, mariadbReplPassword))
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
	if _, err := m.root.ExecContext(ctx, st); err != nil {
		t.Fatalf("testenv: %s on %s: %s: %v", what, m.Addr(), strings.Join(strings.Fields(st), " "), err)
	}
}

// slaveStatus is SHOW SLAVE STATUS's row by column (empty when the server
// replicates nothing).
func (m *MariaDB) slaveStatus(t testing.TB) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := m.root.QueryxContext(ctx, "SHOW SLAVE STATUS")
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
	if err := m.root.GetContext(ctx, &pos, "SELECT @@GLOBAL."+variable); err != nil {
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

// findProgram looks name up in PATH, then in the sbin and bin directories a
// non-root PATH often leaves out.
func findProgram(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", err
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return lastLines(string(b), n)
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
