package procs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// MariaDBOptions configures StartMariaDB. Its zero value is a small lone
// server: 32 MiB buffer pool, 16 MiB redo log.
type MariaDBOptions struct {
	// BufferPool is innodb_buffer_pool_size ("32M" when empty).
	BufferPool string
	// LogFileSize is innodb_log_file_size ("16M" when empty).
	LogFileSize string
	// Args are more of mariadbd's options (--server-id, --log-bin,
	// --userstat, …), after the common ones.
	Args []string
	// Server and Install name the programs ("mariadbd" and
	// "mariadb-install-db" when empty), looked up with Program.
	Server, Install string
}

// MariaDB is a private mariadbd, its data under the folder StartMariaDB
// was given, listening on 127.0.0.1 only, root without a password.
type MariaDB struct {
	*Proc
	dir     string
	port    int
	root    *sqlx.DB
	sockTmp string // a folder of /tmp for the socket, removed by Close
}

// StartMariaDB initialises a data directory under dir with
// mariadb-install-db and starts mariadbd on it, on a free 127.0.0.1 port,
// with --no-defaults and small buffers. Temporary tables go to a directory
// of the server's own: mariadbd deletes every #sql* file of its tmpdir
// when it starts, other servers' tables in /tmp included. It returns once
// root can connect (within 60 seconds) or with the tail of the server's
// error log. A port taken between its choice and the server's bind is
// retried on another port. Close stops the server.
func StartMariaDB(ctx context.Context, dir string, opts MariaDBOptions) (_ *MariaDB, err error) {
	if opts.Server == "" {
		opts.Server = "mariadbd"
	}
	if opts.Install == "" {
		opts.Install = "mariadb-install-db"
	}
	server, err := Program(opts.Server)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed (apt-get install mariadb-server): %w", opts.Server, err)
	}
	install, err := Program(opts.Install)
	if err != nil {
		return nil, fmt.Errorf("%s is not installed (apt-get install mariadb-server): %w", opts.Install, err)
	}
	if opts.BufferPool == "" {
		opts.BufferPool = "32M"
	}
	if opts.LogFileSize == "" {
		opts.LogFileSize = "16M"
	}
	m := &MariaDB{dir: dir}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	data, tmp := filepath.Join(dir, "data"), filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, err
	}
	// A Unix socket's path holds at most 107 bytes; a long test name under
	// a long TMPDIR can make dir's longer than that.
	sockDir := dir
	if len(filepath.Join(sockDir, "sock")) > 100 {
		if sockDir, err = os.MkdirTemp("/tmp", "mdb"); err != nil {
			return nil, err
		}
		m.sockTmp = sockDir
	}
	out, err := exec.CommandContext(ctx, install, "--no-defaults", "--datadir="+data, "--tmpdir="+tmp,
		"--auth-root-authentication-method=normal", "--skip-test-db",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M").CombinedOutput()
	if err != nil {
		// The cause is at the start; the rest is the script's advice.
		return nil, fmt.Errorf("%s: %w: %s", opts.Install, err, FirstLines(string(out), 8))
	}

	errLog, outLog := filepath.Join(dir, "err.log"), filepath.Join(dir, "mariadbd.out")
	for attempt := 1; ; attempt++ {
		if m.port, err = FreePort(); err != nil {
			return nil, err
		}
		args := []string{
			"--no-defaults",
			"--datadir=" + data,
			"--tmpdir=" + tmp,
			"--port=" + strconv.Itoa(m.port),
			"--bind-address=127.0.0.1",
			"--socket=" + filepath.Join(sockDir, "sock"),
			"--pid-file=" + filepath.Join(dir, "pid"),
			"--log-error=" + errLog,
			"--skip-name-resolve",
			"--character-set-server=utf8mb4", // as the shared server (Debian's configuration)
			"--collation-server=utf8mb4_general_ci",
			"--innodb-buffer-pool-size=" + opts.BufferPool,
			"--innodb-log-file-size=" + opts.LogFileSize,
			"--aria-pagecache-buffer-size=8M", // 128M by default, allocated at start
			"--key-buffer-size=1M",
			"--performance-schema=OFF",
			// Commits reach the OS at once and the disk within a second: a
			// SIGKILL loses nothing, only a crash of the machine would.
			"--innodb-flush-log-at-trx-commit=2",
		}
		args = append(args, opts.Args...)
		if os.Geteuid() == 0 {
			args = append(args, "--user=root") // mariadbd refuses to run as root without it
		}
		os.Remove(errLog)
		err = m.spawn(ctx, server, args, outLog)
		if err == nil {
			return m, nil
		}
		tail := LastLines(FileTail(errLog, 1<<20), 20)
		if attempt < 5 && strings.Contains(tail, "Address already in use") {
			continue
		}
		// What mariadbd says before it opens its error log (a bad
		// option) goes to its standard error.
		if b, _ := os.ReadFile(outLog); len(b) > 0 {
			tail += "\nits standard error:\n" + LastLines(string(b), 10)
		}
		return nil, fmt.Errorf("mariadbd on %s: %w; the end of its error log %s:\n%s", m.Addr(), err, errLog, tail)
	}
}

// spawn starts mariadbd with args and waits until root can connect. When
// it returns nil, m.Proc and m.root are set; otherwise the process has
// exited (or been stopped).
func (m *MariaDB) spawn(ctx context.Context, server string, args []string, outLog string) error {
	out, err := os.Create(outLog)
	if err != nil {
		return err
	}
	defer out.Close() // the child has its own copy
	p, err := Start("mariadbd", server, args, nil, out)
	if err != nil {
		return err
	}
	root, err := sqlx.Open("mysql", m.DSN("root", ""))
	if err != nil {
		p.Stop(10 * time.Second)
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err = root.PingContext(pctx)
		cancel()
		if err == nil {
			m.Proc, m.root = p, root
			return nil
		}
		if !p.Running() {
			root.Close()
			return errors.New("the server exited while starting")
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			root.Close()
			p.Stop(10 * time.Second)
			return fmt.Errorf("root cannot connect after 60s: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is the server's address, "127.0.0.1:port".
func (m *MariaDB) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port)) }

// Port is the server's port.
func (m *MariaDB) Port() int { return m.port }

// Dir is the folder StartMariaDB was given.
func (m *MariaDB) Dir() string { return m.dir }

// Root is a pool of root's connections to the server, with no database
// selected; Close closes it.
func (m *MariaDB) Root() *sqlx.DB { return m.root }

// DSN is a go-sql-driver DSN of user ("name" or "name:password") on the
// server, on database db ("" for none), reading DATETIME columns as UTC
// time.Time.
func (m *MariaDB) DSN(user, db string) string {
	dsn, err := sharedenv.DatabaseDSN(user+"@tcp("+m.Addr()+")/", db)
	if err != nil {
		panic(err) // the DSN is this file's own
	}
	return dsn
}

// Close closes root's pool and stops the server (SIGTERM, then SIGKILL
// after 10 seconds). It does nothing on a nil MariaDB.
func (m *MariaDB) Close() {
	if m == nil {
		return
	}
	if m.root != nil {
		m.root.Close()
	}
	if m.Proc != nil {
		m.Stop(10 * time.Second)
	}
	if m.sockTmp != "" {
		os.RemoveAll(m.sockTmp)
	}
}
