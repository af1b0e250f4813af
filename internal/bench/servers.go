package bench

import (
	"context"
	"maps"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/procs"
)

// Private servers: a mariadbd and a redis-server the bench starts for one
// figure (internal/procs), so that their counters (SHOW GLOBAL STATUS,
// INFO) count the product's work and the bench's own, nothing else.

// startMariaDB starts a private mariadbd under dir, with a buffer pool of
// bufferPool bytes (large enough to hold the figure's tables: the figure
// counts rows, not disk reads) and per-user statistics on (userstat:
// ROWS_READ and SELECT_COMMANDS by user in
// information_schema.USER_STATISTICS).
func startMariaDB(ctx context.Context, dir string, bufferPool string) (*procs.MariaDB, error) {
	m, err := procs.StartMariaDB(ctx, dir, procs.MariaDBOptions{
		BufferPool:  bufferPool,
		LogFileSize: "64M",
		Args:        []string{"--skip-log-bin", "--userstat=1", "--max-connections=500"},
	})
	if err != nil {
		return nil, err
	}
	m.Root().SetMaxOpenConns(2)
	return m, nil
}

// privatePair is a private mariadbd and redis-server for one figure, and
// the bench's own Redis connection to it, whose commands are counted so
// that they can be taken out of the figures.
type privatePair struct {
	db  *procs.MariaDB
	rs  *procs.Redis
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
	rs, err := procs.StartRedis(ctx, filepath.Join(dir, "redis"), 0)
	if err != nil {
		db.Close()
		return nil, err
	}
	logf("%s: private mariadbd on %s, redis-server on %s", name, db.Addr(), rs.Addr)
	p := &privatePair{db: db, rs: rs, own: newCmdCounter(),
		rdb: redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: poolSize, ConnMaxIdleTime: -1, DisableIdentity: true})}
	p.rdb.AddHook(p.own)
	return p, nil
}

func (p *privatePair) close() {
	p.rdb.Close()
	p.rs.Close()
	p.db.Close()
}

// productEnv is the environment of a product binary (scanner, refresher)
// run against a private pair as the MariaDB user user: databases wmsDB and
// ieDB of db, the Redis at redisAddr, the providers file pf, a free HTTP
// address and JSON logs at info, with extra on top.
func productEnv(db *procs.MariaDB, redisAddr, user, wmsDB, ieDB, pf string, extra map[string]string) (map[string]string, error) {
	addr, err := procs.FreeAddr()
	vs := map[string]string{
		"WMS_DB_DSN":     db.DSN(user, wmsDB),
		"IE_DB_DSN":      db.DSN(user, ieDB),
		"REDIS_URL":      "redis://" + redisAddr + "/0",
		"PROVIDERS_FILE": pf,
		"HTTP_ADDR":      addr,
		"LOG_FORMAT":     "json",
		"LOG_LEVEL":      "info",
	}
	maps.Copy(vs, extra)
	return vs, err
}
