// Command refresher is an asynq worker: it takes refresh tasks, calls the
// connection's marketplace and writes the new token back to MySQL. Run as
// many replicas as the fleet needs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/metrics"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

var _ refresh.Store = (*mysql.Store)(nil)

func run(ctx context.Context, args []string, getenv config.Getenv, stderr io.Writer) int {
	fs := flag.NewFlagSet("refresher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tryID := fs.Int64("try", 0, "call the marketplace once for this connection id, print the verdict, store nothing, exit")
	spend := fs.Bool("spend-refresh-token", false, "with --try: allow a call that sends the stored refresh token")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "refresher: takes no arguments but --try <connection id>; it is configured by environment (see README)")
		return 2
	}
	cfg, err := config.LoadRefresher(getenv)
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

	store, err := mysql.Open(ctx, cfg.WMSDSN, cfg.IEDSN, mysql.Options{
		Location: cfg.Location, MaxOpenConns: cfg.DBMaxOpenConns,
	})
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}
	defer store.Close()
	if *tryID != 0 {
		return try(ctx, store, cfg.Providers, *tryID, *spend, stderr)
	}

	rdb, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		log.Error("cannot start: unsupported REDIS_URL")
		return 2
	}
	defer rdb.Close()
	if err := config.PingRedis(ctx, rdb, cfg.Redis); err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}

	reg := metrics.NewRegistry()
	m := metrics.NewRefresher(reg)
	providers, err := refresh.Marketplaces(cfg.Providers, provider.NewHTTPClient(cfg.Concurrency), m, rdb, cfg.Queue,
		breaker.Config{Failures: cfg.BreakerFailures, Cooldown: cfg.BreakerCooldown}, log)
	if err != nil {
		fmt.Fprintln(stderr, "refresher:", &config.SettingError{Name: "PROVIDERS_FILE", Err: err})
		return 2
	}
	// Each stored token's next refresh is scheduled on its own clock; the
	// scan is the backstop.
	rcfg := refresh.Config{Scheduler: task.NewQueue(rdb, cfg.Queue, cfg.TaskTimeout)}
	hooks, err := startWebhooks(cfg, rdb, &rcfg, log)
	if err != nil {
		log.Error("cannot start the webhook deliveries", zap.Error(err))
		return 1
	}
	if hooks != nil {
		// Deferred, so it runs after the refresh workers' drain below: an
		// event queued while draining still gets its chance; undelivered
		// ones stay queued for the next start.
		defer hooks.Shutdown()
	}
	leases := lease.New(rdb, cfg.Queue, 0)
	handler := refresh.New(store, leases, providers, rcfg, log, m)

	if cfg.HTTPAddr != "" {
		closeHTTP, err := serveHTTP(ctx, cfg, store, rdb, reg, log)
		if err != nil {
			log.Error("cannot start", zap.Error(err))
			return 1
		}
		defer closeHTTP()
	}

	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: cfg.Concurrency,
		// On-demand refreshes (a service just got a 401) overtake any
		// backlog of scanned ones, at one Redis round trip per take.
		Queues:                   task.ServerQueues(cfg.Queue),
		RetryDelayFunc:           refresh.RetryDelay(cfg.RetryBaseDelay, cfg.RetryMaxDelay),
		IsFailure:                refresh.IsFailure, // breaker open or no rate slot: wait, spend no retry
		ShutdownTimeout:          cfg.DrainTimeout,
		DelayedTaskCheckInterval: cfg.RetryCheck,
		TaskCheckInterval:        200 * time.Millisecond,
		Logger:                   logging.Asynq{L: log.Named("asynq").Sugar()},
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(task.TypeRefresh, handler)
	mux.Handle(task.TypeWake, handler)
	if err := srv.Start(mux); err != nil {
		log.Error("cannot start the worker", zap.Error(err))
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
		census.New(store, task.NewQueue(rdb, cfg.Queue, cfg.TaskTimeout), censusTargets(cfg.Providers)).
			Lead(ctx, leases, holderName("refresher"), cfg.CensusInterval, lease.DefaultTTL/3, metrics.NewCensus(reg), log)
	}()
	log.Info("refresher started", zap.Int("concurrency", cfg.Concurrency), zap.String("queue", cfg.Queue),
		zap.Int("providers", len(providers)))
	<-ctx.Done()
	log.Info("draining: in-flight refreshes get DRAIN_TIMEOUT to finish; the rest go back to the queue",
		zap.Duration("drain_timeout", cfg.DrainTimeout))
	srv.Shutdown()
	<-censusDone // its lease released while Redis is still open
	// A token obtained just before DRAIN_TIMEOUT is still being written
	// (its write outlives the task's cancellation): see it stored.
	if !handler.Wait(time.Minute) {
		log.Error("stopped with a token write still in progress")
	}
	log.Info("refresher stopped")
	return 0
}

// startWebhooks starts the delivery workers of the failure notifications
// and sets the handler's notifier, when WEBHOOK_URLS is set; it returns nil
// otherwise.
func startWebhooks(cfg config.Refresher, rdb redis.UniversalClient, rcfg *refresh.Config, log *zap.Logger) (*asynq.Server, error) {
	w := cfg.Webhooks
	if len(w.Endpoints) == 0 {
		return nil, nil
	}
	d, err := webhook.NewDeliverer(w.Endpoints, w.Secret, w.Timeout, log)
	if err != nil {
		return nil, err
	}
	srv := webhook.NewServer(rdb, cfg.Queue, webhook.ServerConfig{
		Concurrency: w.Concurrency, CheckInterval: cfg.RetryCheck, ShutdownTimeout: cfg.DrainTimeout,
	}, log)
	if err := srv.Start(webhook.Mux(d)); err != nil {
		return nil, err
	}
	rcfg.Notifier = webhook.NewNotifier(rdb, cfg.Queue, w.Endpoints, webhook.NotifierConfig{
		Events: w.Events, MaxRetry: w.MaxRetry,
	}, log)
	log.Info("webhooks enabled", zap.Int("endpoints", len(w.Endpoints)), zap.Strings("events", w.Events),
		zap.String("queue", webhook.Queue(cfg.Queue)))
	return srv, nil
}

// holderName names this process in a lease's Redis value, for operators
// (never a secret): the binary, the host and the pid.
func holderName(binary string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", binary, host, os.Getpid())
}
