package e2e

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// bundle is one test's whole system, wired in-process the way cmd/ wires
// it: real MariaDB and Redis, the sandbox marketplace on a real port.
type bundle struct {
	env        *testenv.Env
	sandbox    *sandbox.Server
	sandboxURL string
	store      *mysql.Store
	queue      *task.Queue
	inspector  *asynq.Inspector
	logs       *testenv.Logs
	log        *zap.Logger
	providers  []registry.Entry
	cooldown   time.Duration
	// notifier, when set before startRefresher, hears of failures and
	// refreshes (webhooks).
	notifier refresh.Notifier
	// schedule makes the refresher schedule each stored token's refresh
	// on its own clock, as cmd/refresher does (off by default, so a
	// settled queue means no task at all).
	schedule bool
	obs      refresh.Observer
}

type options struct {
	// providers returns the providers given the sandbox's URL; default
	// type 16 → ajio.
	providers func(sandboxURL string) []registry.Entry
	cooldown  time.Duration
	schedule  bool
}

func setup(t *testing.T, opts options) *bundle {
	t.Helper()
	env := testenv.New(t)
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)

	logs := &testenv.Logs{}
	log := logs.Logger()
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{ChunkSize: 7})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })

	entries := registry.Defaults(srv.URL)
	if opts.providers != nil {
		entries = opts.providers(srv.URL)
	}
	if opts.cooldown == 0 {
		opts.cooldown = time.Hour
	}
	return &bundle{
		env: env, sandbox: sb, sandboxURL: srv.URL, store: store,
		queue:     task.NewQueue(env.Redis, env.Queue, 30*time.Second),
		inspector: asynq.NewInspectorFromRedisClient(env.Redis),
		logs:      logs, log: log, providers: entries, cooldown: opts.cooldown, schedule: opts.schedule,
	}
}

// scanner returns a scanner over the bundle's providers.
func (b *bundle) scanner(cfg scan.Config) *scan.Scanner {
	for _, e := range b.providers {
		cfg.Targets = append(cfg.Targets, scan.Target{IntegrationType: e.IntegrationType, Kind: e.Kind, RefreshBefore: e.Before()})
	}
	if cfg.Cooldown == 0 {
		cfg.Cooldown = b.cooldown
	}
	return scan.New(b.store, b.queue, cfg, b.log, nil)
}

// scanOnce runs one scan and returns the result of the first target.
func (b *bundle) scanOnce(t *testing.T) scan.Result {
	t.Helper()
	res, err := b.scanner(scan.Config{}).RunOnce(context.Background())
	require.NoError(t, err)
	require.NotEmpty(t, res)
	return res[0]
}

// startRefresher runs an asynq worker with the refresh handler until the
// test ends.
func (b *bundle) startRefresher(t *testing.T) {
	t.Helper()
	providers, err := refresh.Marketplaces(b.providers, provider.NewHTTPClient(10), nil, b.env.Redis, b.env.Queue,
		breaker.Config{Failures: 5, Cooldown: 500 * time.Millisecond}, b.log)
	require.NoError(t, err)
	rcfg := refresh.Config{SaveRetryFor: time.Second, Notifier: b.notifier}
	if b.schedule {
		rcfg.Scheduler = b.queue
	}
	h := refresh.New(b.store, lease.New(b.env.Redis, b.env.Queue, 0), providers, rcfg, b.log, b.obs)
	srv := asynq.NewServerFromRedisClient(b.env.Redis, asynq.Config{
		Concurrency:              8,
		Queues:                   task.ServerQueues(b.env.Queue),
		RetryDelayFunc:           refresh.RetryDelay(20*time.Millisecond, 200*time.Millisecond),
		IsFailure:                refresh.IsFailure,
		TaskCheckInterval:        20 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		ShutdownTimeout:          2 * time.Second,
		Logger:                   logging.Asynq{L: b.log.Named("asynq").Sugar()},
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.Handle(task.TypeRefresh, h)
	mux.Handle(task.TypeWake, h)
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)
}

// settled reports whether the queue holds no pending, active, scheduled or
// retrying task: every enqueued refresh finished or was archived.
func (b *bundle) settled() bool {
	info, err := b.inspector.GetQueueInfo(b.env.Queue)
	if err != nil {
		return false
	}
	return info.Pending == 0 && info.Active == 0 && info.Scheduled == 0 && info.Retry == 0
}

func (b *bundle) archived(t *testing.T) map[int64]task.Archived {
	t.Helper()
	a, err := b.queue.ListArchived()
	require.NoError(t, err)
	return a
}
