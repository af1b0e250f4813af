// Command scanner finds connections whose marketplace token expires soon and
// enqueues one refresh task per connection, every SCAN_INTERVAL (or once).
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
	"github.com/eshopbox/token-refresher/internal/redisconn"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/task"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var _ scan.Store = (*mysql.Store)(nil)
var _ scan.Queue = (*task.Queue)(nil)

const (
	about = "scanner finds the active connections whose token expires soon and enqueues one refresh task per\n" +
		"connection in Redis (asynq) for the refreshers. Runs forever, scanning every SCAN_INTERVAL, unless --once."
	usage = "scanner [--once | --dry-run]"
)

func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("scanner", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // --help is answered below; a mistake gets one line
	once := fs.Bool("once", false, "scan once, then exit (non-zero if the scan failed)")
	dryRun := fs.Bool("dry-run", false, "print the due connections (id, type, expiry) and enqueue nothing; implies --once")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		config.PrintHelp(stdout, config.BinScanner, about, usage, fs)
		return 0
	} else if err != nil {
		fmt.Fprintln(stderr, "scanner: usage:", usage, "(scanner --help lists the flags and settings)")
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scanner: unexpected argument %q; usage: %s (scanner --help lists the flags and settings)\n", fs.Arg(0), usage)
		return 2
	}
	cfg, err := startup.LoadScanner(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "scanner:", err)
		return 2
	}
	log, err := logging.NewTo(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "scanner:", err)
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

	targets := registry.Targets(cfg.Providers)
	scfg := scan.Config{
		Targets: targets, Interval: cfg.Interval, Cooldown: cfg.Cooldown,
		Concurrency: cfg.Concurrency, DryRun: *dryRun, DryRunOut: stdout,
	}

	var queue scan.Queue = dryQueue{}
	var rdb redis.UniversalClient
	checks := []ops.Check{{Name: "mysql", Fn: store.Ping}}
	if !*dryRun {
		var ok bool
		rdb, ok = cfg.Redis.MakeRedisClient().(redis.UniversalClient)
		if !ok {
			log.Error("cannot start: unsupported REDIS_URL")
			return 2
		}
		defer rdb.Close()
		if err := startup.PingRedis(ctx, rdb, cfg.Redis); err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
		tq := startup.TaskQueue(rdb, cfg.Common)
		if err := startup.CheckQueue(ctx, tq, cfg.Redis); err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
		queue = tq
		checks = append(checks, ops.Check{Name: "redis", Fn: func(ctx context.Context) error { return redisconn.Ready(ctx, rdb) }})
	}

	reg := metrics.NewRegistry()
	// One set of due connections for the scans and the census this process
	// takes when it holds the census lease: one full pass per
	// FULL_SCAN_INTERVAL between them, not one each.
	tracked := dueset.New(store, targets, dueset.Options{FullInterval: cfg.FullScanInterval, Log: log})
	scanner := scan.New(tracked, queue, scfg, log, metrics.NewScanner(reg))

	if *once || *dryRun {
		if _, err := scanner.RunOnce(ctx); err != nil {
			// A target's failure is logged by the scan; one before the
			// targets (the set's sync, the archived list) is not.
			log.Error("scan failed", zap.Error(err))
			return 1
		}
		return 0
	}

	censusDone := make(chan struct{})
	if rq, ok := queue.(*task.Queue); ok && cfg.HTTPAddr != "" {
		// Queue sizes at scrape time, and the census of token states whose
		// expired count must stay 0. The census is taken by whichever
		// long-running process holds the census lease (this scanner or a
		// refresher replica): see census.Lead.
		metrics.NewQueues(reg, rq.Inspector(), rq.Names()...)
		go func() {
			defer close(censusDone)
			host, _ := os.Hostname()
			census.New(tracked, rq, targets).Lead(ctx, lease.New(rdb, cfg.Queue, 0),
				fmt.Sprintf("scanner@%s:%d", host, os.Getpid()), cfg.Interval, lease.DefaultTTL/3, metrics.NewCensus(reg), log)
		}()
	} else {
		close(censusDone)
	}
	// Its lease released while Redis is still open.
	defer func() { <-censusDone }()
	if cfg.HTTPAddr != "" {
		if _, _, err := ops.Serve(ctx, cfg.HTTPAddr, ops.NewMux(reg, checks), log); err != nil {
			log.Error("cannot start: HTTP_ADDR", zap.Error(err))
			return 1
		}
	}
	if cfg.PprofAddr != "" {
		if _, err := ops.ServeProfiling(ctx, cfg.PprofAddr, log); err != nil {
			log.Error("cannot start: PPROF_ADDR", zap.Error(err))
			return 1
		}
	}
	// Once the dependencies answered, so that a failed start-up stays one
	// line.
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	log.Info("scanner started", zap.Duration("interval", cfg.Interval), zap.Int("providers", len(targets)))
	if err := scanner.Run(ctx); err != nil {
		log.Error("scanner stopped", zap.Error(err))
		return 1
	}
	log.Info("scanner stopped")
	return 0
}

// dryQueue is the queue of a dry run: the scanner never calls it.
type dryQueue struct{}

func (dryQueue) Enqueue(context.Context, task.Payload) (bool, error) { return false, nil }
func (dryQueue) Retry(context.Context, task.Payload) (bool, error)   { return false, nil }
func (dryQueue) ListArchived() (map[int64]task.Archived, error)      { return nil, nil }
