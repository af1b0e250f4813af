// Command refresher is an asynq worker: it takes refresh tasks, calls the
// connection's marketplace and writes the new token back to MySQL. Run as
// many replicas as the fleet needs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/dueset"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/metrics"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var _ refresh.Store = (*mysql.Store)(nil)

const (
	about = "refresher takes refresh tasks from Redis (asynq), calls each connection's marketplace and writes the new\n" +
		"token back to MySQL. Run as many replicas as the fleet needs; the scanner enqueues the work."
	usage = "refresher [--try <connection id> [--spend-refresh-token]]"
)

func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("refresher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // --help is answered below; a mistake gets one line
	tryID := fs.Int64("try", 0, "call the marketplace once for this connection id, print the verdict, store nothing, exit")
	spend := fs.Bool("spend-refresh-token", false, "with --try: allow a call that sends the stored refresh token")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		config.PrintHelp(stdout, config.BinRefresher, about, usage, fs)
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "refresher: usage:", usage, "(refresher --help lists the flags and settings)")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "refresher: unexpected argument %q; usage: %s (refresher --help lists the flags and settings)\n", fs.Arg(0), usage)
		return 2
	}
	cfg, err := startup.LoadRefresher(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "refresher:", err)
		return 2
	}
	log, err := logging.NewTo(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "refresher:", err)
		return 2
	}
	defer log.Sync()
	logging.RouteRedis(log)

	store, err := startup.OpenStore(ctx, cfg.WMSDSN, cfg.IEDSN, cfg.MySQL)
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	defer store.Close()
	if *tryID != 0 {
		return try(ctx, store, cfg.Providers, *tryID, *spend, getenv, stderr)
	}

	rdb, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		log.Error("cannot start: unsupported REDIS_URL")
		return 2
	}
	defer rdb.Close()
	if err := startup.PingRedis(ctx, rdb, cfg.Redis); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	queue := startup.TaskQueue(rdb, cfg.Common)
	if err := startup.CheckQueue(ctx, queue, cfg.Redis); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}

	reg := metrics.NewRegistry()
	r, err := startup.NewRefresher(worker.Engines{Store: store, Redis: rdb, Log: log, Observer: metrics.NewRefresher(reg)}, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "refresher:", err)
		return 2
	}

	if cfg.PprofAddr != "" {
		if _, err := ops.ServeProfiling(ctx, cfg.PprofAddr, log); err != nil {
			log.Error("cannot start: PPROF_ADDR", zap.Error(err))
			return 1
		}
	}
	metrics.NewBacklogs(reg, r.Backlogs)
	if cfg.HTTPAddr != "" {
		closeHTTP, err := serveHTTP(ctx, cfg, store, r, rdb, queue, reg, log)
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
		defer closeHTTP()
	}

	if err := r.Start(); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	// The census gauges (expired_connections must stay 0) come from the
	// one replica holding the census lease, so they are served even where
	// the scanner runs as a --once cron job: see census.Lead for why only
	// the holder exposes them.
	// A replica without HTTP_ADDR serves no /metrics, so it never takes the
	// lease.
	censusDone := make(chan struct{})
	go func() {
		defer close(censusDone)
		if cfg.HTTPAddr == "" {
			return
		}
		targets := registry.Targets(cfg.Providers)
		tracked := dueset.New(store, targets, dueset.Options{FullInterval: cfg.FullScanInterval, Log: log})
		census.New(tracked, queue, targets).
			Lead(ctx, lease.New(rdb, cfg.Queue, 0), holderName("refresher"), cfg.CensusInterval, lease.DefaultTTL/3, metrics.NewCensus(reg), log)
	}()
	// The shard record, again every minute: written back when Redis lost
	// it (its master restarted empty), so a scanner or refresher started
	// later with another REFRESH_QUEUE_SHARDS is still refused; and said
	// loudly if another number took its place meanwhile.
	go func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			switch err := startup.CheckQueue(ctx, queue, cfg.Redis); {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, task.ErrShardsDiffer):
				log.Error("another process recorded another number of shards: this refresher may not serve the queues a scanner fills", zap.Error(err))
			default:
				log.Warn("shard check", zap.Error(err))
			}
		}
	}()
	// Once the dependencies answered, so that a failed start-up stays one
	// line.
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	log.Info("refresher started", zap.Int("concurrency", cfg.Concurrency), zap.String("queue", cfg.Queue),
		zap.Int("providers", len(r.Marketplaces)))
	<-ctx.Done()
	log.Info("draining: in-flight refreshes get DRAIN_TIMEOUT to finish; the rest go back to the queue",
		zap.Duration("drain_timeout", cfg.DrainTimeout))
	<-censusDone // its lease released while Redis is still open
	// A token obtained just before DRAIN_TIMEOUT is still being written
	// (its write outlives the task's cancellation): see it stored. Then the
	// webhook deliveries drain: an event queued while draining still gets
	// its chance; undelivered ones stay queued for the next start.
	if !r.Shutdown(time.Minute) {
		// Shutdown named them; the exit status says it too.
		log.Error("refresher stopped with tokens in hand neither stored nor in the durable outbox")
		return 1
	}
	log.Info("refresher stopped")
	return 0
}

// holderName names this process in a lease's Redis value, for operators
// (never a secret): the binary, the host and the pid.
func holderName(binary string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", binary, host, os.Getpid())
}
