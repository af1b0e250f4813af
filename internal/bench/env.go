package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/sharedenv"
)

// env is one bench run's private slice of the shared servers: two databases
// named bench_<id>_*, asynq queues named bench_<id>_*, and a temp folder.
// Everything is removed by close, so a run leaves nothing behind.
type env struct {
	id            string
	wmsDB, ieDB   string
	wmsDSN, ieDSN string
	// productIE is ieDSN with the driver settings the product's store
	// uses (mysql.ParseDSN), for the figures that compare with it.
	productIE string
	root      *sqlx.DB
	wms, ie   *sqlx.DB
	rdb       *redis.Client
	redisURL  string
	inspector *asynq.Inspector
	tmp       string
	queueSeq  atomic.Int64

	mu     sync.Mutex
	queues []string
}

// stale is the expiry every benchmark row is reset to: long past, so due.
var stale = time.Date(2022, 8, 17, 16, 25, 8, 0, time.UTC)

func newEnv(ctx context.Context, mysqlDSN, redisAddr string) (_ *env, err error) {
	e := &env{id: sharedenv.RandomID()}
	e.wmsDB, e.ieDB = "bench_"+e.id+"_wms", "bench_"+e.id+"_ie"
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if e.tmp, err = os.MkdirTemp("", "bench-"+e.id+"-"); err != nil {
		return e, err
	}
	if e.root, err = sqlx.Open("mysql", mysqlDSN); err != nil {
		return e, fmt.Errorf("MySQL DSN: %w", err)
	}
	e.root.SetMaxOpenConns(2)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err = e.root.PingContext(pctx); err != nil {
		return e, fmt.Errorf("MariaDB is not reachable: %w", err)
	}
	if err = sharedenv.CreateDatabases(pctx, e.root, e.wmsDB, e.ieDB); err != nil {
		return e, err
	}
	if e.wmsDSN, err = sharedenv.DatabaseDSN(mysqlDSN, e.wmsDB); err != nil {
		return e, err
	}
	if e.ieDSN, err = sharedenv.DatabaseDSN(mysqlDSN, e.ieDB); err != nil {
		return e, err
	}
	if e.productIE, err = mysql.ParseDSN(e.ieDSN, time.UTC); err != nil {
		return e, err
	}
	e.wms = sqlx.MustOpen("mysql", e.wmsDSN)
	e.ie = sqlx.MustOpen("mysql", e.ieDSN)
	e.wms.SetMaxOpenConns(4)
	e.ie.SetMaxOpenConns(4)

	// The same client settings the binaries get from a redis:// URL.
	e.redisURL = "redis://" + redisAddr + "/0"
	opt, err := asynq.ParseRedisURI(e.redisURL)
	if err != nil {
		return e, fmt.Errorf("Redis address: %w", err)
	}
	e.rdb = opt.MakeRedisClient().(*redis.Client)
	if err = e.rdb.Ping(pctx).Err(); err != nil {
		return e, fmt.Errorf("Redis is not reachable: %w", err)
	}
	e.inspector = asynq.NewInspectorFromRedisClient(e.rdb)
	return e, nil
}

// close drops the databases and queues and removes the temp folder.
func (e *env) close() error {
	var errs []error
	if e.rdb != nil {
		e.mu.Lock()
		qs := append([]string(nil), e.queues...)
		e.mu.Unlock()
		for _, q := range qs {
			errs = append(errs, e.dropQueue(q))
		}
		errs = append(errs, e.rdb.Close())
	}
	if e.wms != nil {
		e.wms.Close()
		e.ie.Close()
	}
	if e.root != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		errs = append(errs, sharedenv.DropDatabases(ctx, e.root, e.wmsDB, e.ieDB))
		e.root.Close()
	}
	if e.tmp != "" {
		errs = append(errs, os.RemoveAll(e.tmp))
	}
	return errors.Join(errs...)
}

// newQueue names a fresh asynq queue of this run. Names have a fixed-width
// counter, so one is never a prefix of another (except its _urgent twin,
// which dropQueue removes with it).
func (e *env) newQueue(tag string) string {
	q := fmt.Sprintf("bench_%s_%s%04d", e.id, tag, e.queueSeq.Add(1))
	e.mu.Lock()
	e.queues = append(e.queues, q)
	e.mu.Unlock()
	return q
}

// dropQueue deletes every key of q and of its twins.
func (e *env) dropQueue(q string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return sharedenv.DropQueueKeys(ctx, e.rdb, q)
}

// queueSize is what is left in q: pending, active, scheduled and retrying
// tasks, read straight from asynq's keys (one cheap pipeline, so it can be
// polled every millisecond without loading Redis the way
// Inspector.GetQueueInfo would).
type queueSize struct{ pending, active, scheduled, retry, archived int64 }

// left is what a figure still waits for. Scheduled tasks are not counted:
// they are the refresher's wake-ups of the tokens it stored (their next
// refreshes, later than any figure's run); the bench schedules nothing else.
func (s queueSize) left() int64 { return s.pending + s.active + s.retry }

func (e *env) queueSize(ctx context.Context, q string) (queueSize, error) {
	p := "asynq:{" + q + "}:"
	pipe := e.rdb.Pipeline()
	pending := pipe.LLen(ctx, p+"pending")
	active := pipe.LLen(ctx, p+"active")
	scheduled := pipe.ZCard(ctx, p+"scheduled")
	retry := pipe.ZCard(ctx, p+"retry")
	archived := pipe.ZCard(ctx, p+"archived")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return queueSize{}, err
	}
	return queueSize{pending.Val(), active.Val(), scheduled.Val(), retry.Val(), archived.Val()}, nil
}

// fleet is a range of connection ids of one integration type.
type fleet struct {
	Type  string
	First int64
	N     int
}

func (f fleet) last() int64 { return f.First + int64(f.N) - 1 }

// sub is the first n connections of f.
func (f fleet) sub(n int) fleet { return fleet{Type: f.Type, First: f.First, N: min(n, f.N)} }

// username is the sandbox seller of a connection; the sandbox accepts it
// with sandbox.Password.
func username(id int64) string { return fmt.Sprintf("s%d%s", id, sandbox.GeneratedDomain) }

// seed inserts f's channels and connections, every one active, with the
// expiry expiry(id) (nil: NULL), in multi-row INSERTs.
func (e *env) seed(ctx context.Context, f fleet, expiry func(id int64) *time.Time) error {
	return seedFleet(ctx, e.wms, e.ie, f, expiry)
}

// seedFleet is seed into the channels table of wms and the connections
// table of ie.
func seedFleet(ctx context.Context, wms, ie *sqlx.DB, f fleet, expiry func(id int64) *time.Time) error {
	const batch = 2000
	for start := f.First; start <= f.last(); start += batch {
		var ch, conn strings.Builder
		ch.WriteString("INSERT INTO channels (connectionId, integrationType, status) VALUES ")
		conn.WriteString("INSERT INTO ie_appinstall_connection (id, inputFields, accessTokenExpiryAt, isActive) VALUES ")
		for id := start; id < start+batch && id <= f.last(); id++ {
			if id > start {
				ch.WriteByte(',')
				conn.WriteByte(',')
			}
			fmt.Fprintf(&ch, "(%d,'%s','0')", id, f.Type)
			exp := "NULL"
			if t := expiry(id); t != nil {
				exp = "'" + t.UTC().Format(time.DateTime) + "'"
			}
			u := username(id)
			fmt.Fprintf(&conn, `(%d,'{"username":"%s","password":"%s"}',%s,'active')`, id, u, sandbox.Password(u), exp)
		}
		if _, err := wms.ExecContext(ctx, ch.String()); err != nil {
			return fmt.Errorf("seed channels: %w", err)
		}
		if _, err := ie.ExecContext(ctx, conn.String()); err != nil {
			return fmt.Errorf("seed connections: %w", err)
		}
	}
	return nil
}

// reset makes every connection of f due again, with no token.
func (e *env) reset(ctx context.Context, f fleet) error {
	_, err := e.ie.ExecContext(ctx, `UPDATE ie_appinstall_connection
		SET accessToken = NULL, refreshToken = NULL, accessTokenExpiryAt = ?
		WHERE id BETWEEN ? AND ?`, stale, f.First, f.last())
	return err
}

// stored counts the connections of f holding a token newer than the reset.
func (e *env) stored(ctx context.Context, f fleet) (int, error) {
	var n int
	err := e.ie.GetContext(ctx, &n, `SELECT COUNT(*) FROM ie_appinstall_connection
		WHERE id BETWEEN ? AND ? AND accessTokenExpiryAt > ? AND accessToken IS NOT NULL`,
		f.First, f.last(), stale)
	return n, err
}
