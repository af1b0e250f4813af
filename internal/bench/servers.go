package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// Private servers: a mariadbd and a redis-server the bench starts for one
// figure, so that their counters (SHOW GLOBAL STATUS, INFO) count the
// product's work and the bench's own, nothing else. Unlike testenv's
// StartMariaDB they take no testing.TB: bin/bench is a program.

// privServer is a child server process. The process gets SIGKILL should the
// bench die first (Linux's Pdeathsig, tied to the thread that started it,
// which stays locked until the server exits).
type privServer struct {
	name   string
	dir    string
	log    string // its standard output and error
	proc   *os.Process
	exited chan struct{}
}

func spawnServer(name, dir, program string, args []string) (*privServer, error) {
	s := &privServer{name: name, dir: dir, log: filepath.Join(dir, name+".out"), exited: make(chan struct{})}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.Create(s.log)
	if err != nil {
		return nil, err
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer out.Close()
		cmd := exec.Command(program, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = sharedenv.KillWithParent()
		if err := cmd.Start(); err != nil {
			started <- err
			close(s.exited)
			return
		}
		s.proc = cmd.Process
		started <- nil
		cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return s, nil
}

// stop ends the server: SIGTERM, then SIGKILL after 10 seconds.
func (s *privServer) stop() {
	if s == nil {
		return
	}
	sharedenv.Stop(s.proc, s.exited)
}

func (s *privServer) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// tail is the end of the server's output, for error messages.
func (s *privServer) tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	const max = 1500
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// findProgram looks name up in PATH, then in the sbin and bin directories a
// non-root PATH often leaves out.
func findProgram(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (apt-get install mariadb-server redis-server)", name)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// privMariaDB is a private mariadbd on a free 127.0.0.1 port, root without
// a password, with per-user statistics on (userstat: ROWS_READ and
// SELECT_COMMANDS by user in information_schema.USER_STATISTICS).
type privMariaDB struct {
	*privServer
	addr string
	root *sqlx.DB
}

// startMariaDB initialises a data directory under dir with
// mariadb-install-db and starts mariadbd on it with a buffer pool of
// bufferPool bytes (large enough to hold the figure's tables: the figure
// counts rows, not disk reads).
func startMariaDB(ctx context.Context, dir string, bufferPool string) (_ *privMariaDB, err error) {
	server, err := findProgram("mariadbd")
	if err != nil {
		return nil, err
	}
	install, err := findProgram("mariadb-install-db")
	if err != nil {
		return nil, err
	}
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, install, "--no-defaults", "--datadir="+data, "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %w: %s", err, firstLines(string(out), 8))
	}
	sock := filepath.Join(dir, "sock")
	if len(sock) > 100 { // a Unix socket's path holds at most 107 bytes
		return nil, fmt.Errorf("the temporary folder's path is too long for mariadbd's socket: %s", sock)
	}
	errLog := filepath.Join(dir, "err.log")
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{
			"--no-defaults", "--datadir=" + data, "--tmpdir=" + tmp,
			"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket=" + sock,
			"--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + errLog,
			"--skip-name-resolve", "--skip-log-bin",
			"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
			"--innodb-buffer-pool-size=" + bufferPool, "--innodb-log-file-size=64M",
			"--innodb-flush-log-at-trx-commit=2",
			"--aria-pagecache-buffer-size=8M", "--key-buffer-size=1M",
			"--performance-schema=OFF",
			"--userstat=1",
			"--max-connections=500",
		}
		if os.Geteuid() == 0 {
			args = append(args, "--user=root") // mariadbd refuses to run as root without it
		}
		os.Remove(errLog)
		ps, err := spawnServer("mariadbd", dir, server, args)
		if err != nil {
			return nil, err
		}
		m := &privMariaDB{privServer: ps, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		if err := m.waitUp(ctx); err == nil {
			return m, nil
		} else if tail := ps.tail(errLog); attempt < 5 && strings.Contains(tail, "Address already in use") {
			ps.stop()
			continue
		} else {
			ps.stop()
			return nil, fmt.Errorf("mariadbd on %s: %w; its error log:\n%s\n%s", m.addr, err, tail, ps.tail(ps.log))
		}
	}
}

func (m *privMariaDB) waitUp(ctx context.Context) error {
	root, err := sqlx.Open("mysql", m.dsn("root", ""))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = root.PingContext(pctx)
		cancel()
		if err == nil {
			m.root = root
			root.SetMaxOpenConns(2)
			return nil
		}
		if !m.running() {
			root.Close()
			return errors.New("the server exited while starting")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			root.Close()
			return fmt.Errorf("root cannot connect after 60s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dsn is a go-sql-driver DSN of user (no password) on database db.
func (m *privMariaDB) dsn(user, db string) string {
	dsn, err := sharedenv.DatabaseDSN(user+"@tcp("+m.addr+")/", db)
	if err != nil {
		panic(err) // the DSN is this file's own
	}
	return dsn
}

func (m *privMariaDB) close() {
	if m == nil {
		return
	}
	if m.root != nil {
		m.root.Close()
	}
	m.stop()
}

// privRedis is a private redis-server on a free 127.0.0.1 port, without
// persistence (--save "" --appendonly no).
type privRedis struct {
	*privServer
	addr string
}

func startRedis(ctx context.Context, dir string) (*privRedis, error) {
	server, err := findProgram("redis-server")
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ps, err := spawnServer("redis", dir, server, []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
			"--logfile", "",
		})
		if err != nil {
			return nil, err
		}
		r := &privRedis{privServer: ps, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		c := redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true})
		deadline := time.Now().Add(20 * time.Second)
		for {
			err = c.Ping(ctx).Err()
			if err == nil || !ps.running() || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
		if err == nil {
			return r, nil
		}
		ps.stop()
		if tail := ps.tail(ps.log); attempt < 5 && strings.Contains(tail, "Address already in use") {
			continue
		} else {
			return nil, fmt.Errorf("redis-server on %s: %w; its output:\n%s", r.addr, err, tail)
		}
	}
}

func (r *privRedis) close() {
	if r != nil {
		r.stop()
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// privatePair is a private mariadbd and redis-server for one figure, and
// the bench's own Redis connection to it, whose commands are counted so
// that they can be taken out of the figures.
type privatePair struct {
	db  *privMariaDB
	rs  *privRedis
	rdb *redis.Client
	own *cmdCounter
}

// startPrivatePair starts the pair of figure name under a new folder of
// tmp; poolSize is the bench connection's pool. close stops both servers.
func startPrivatePair(ctx context.Context, tmp, name, bufferPool string, poolSize int, logf func(string, ...any)) (*privatePair, error) {
	dir, err := os.MkdirTemp(tmp, name+"-")
	if err != nil {
		return nil, err
	}
	db, err := startMariaDB(ctx, filepath.Join(dir, "mariadb"), bufferPool)
	if err != nil {
		return nil, err
	}
	rs, err := startRedis(ctx, filepath.Join(dir, "redis"))
	if err != nil {
		db.close()
		return nil, err
	}
	logf("%s: private mariadbd on %s, redis-server on %s", name, db.addr, rs.addr)
	p := &privatePair{db: db, rs: rs, own: newCmdCounter(),
		rdb: redis.NewClient(&redis.Options{Addr: rs.addr, PoolSize: poolSize, ConnMaxIdleTime: -1, DisableIdentity: true})}
	p.rdb.AddHook(p.own)
	return p, nil
}

func (p *privatePair) close() {
	p.rdb.Close()
	p.rs.close()
	p.db.close()
}
