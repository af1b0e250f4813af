package e2e

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/worker"
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
	// webhooks, when set before startRefresher, are the refresher's
	// failure notifications.
	webhooks worker.Webhooks
	// schedule makes the refresher schedule each stored token's refresh
	// on its own clock, as cmd/refresher does (off by default, so a
	// settled queue means no task at all).
	schedule bool
	obs      refresh.Observer
	// fingerprintKey is FINGERPRINT_KEY of the store and the refresher.
	fingerprintKey []byte
}

type options struct {
	// providers returns the providers given the sandbox's URL; default
	// type 16 → ajio.
	providers func(sandboxURL string) []registry.Entry
	cooldown  time.Duration
	schedule  bool
	// fingerprintKey is FINGERPRINT_KEY (nil: the legacy digest).
	fingerprintKey []byte
}

func setup(t *testing.T, opts options) *bundle {
	t.Helper()
	env := testenv.New(t)
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)

	logs := &testenv.Logs{}
	log := logs.Logger()
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{ChunkSize: 7, FingerprintKey: opts.fingerprintKey})
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
		fingerprintKey: opts.fingerprintKey,
	}
}

// scanner returns a scanner over the bundle's providers.
func (b *bundle) scanner(cfg scan.Config) *scan.Scanner {
	cfg.Targets = append(cfg.Targets, registry.Targets(b.providers)...)
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

// startRefresher runs the refresher, assembled as cmd/refresher assembles
// it (internal/worker) with test-sized intervals, until the test ends.
func (b *bundle) startRefresher(t *testing.T) {
	t.Helper()
	r, err := worker.New(worker.Engines{Store: b.store, Redis: b.env.Redis, Log: b.log, Observer: b.obs},
		b.providers, worker.Settings{
			Queue: b.env.Queue, Concurrency: 8, TaskTimeout: 30 * time.Second,
			RetryBaseDelay: 20 * time.Millisecond, RetryMaxDelay: 200 * time.Millisecond,
			RetryCheck: 100 * time.Millisecond, TaskCheck: 20 * time.Millisecond, DrainTimeout: 2 * time.Second,
			Breaker:      breaker.Config{Failures: 5, Cooldown: 500 * time.Millisecond},
			SaveRetryFor: time.Second, Unscheduled: !b.schedule, Webhooks: b.webhooks, Getenv: os.Getenv,
			FingerprintKey: b.fingerprintKey,
		})
	require.NoError(t, err)
	require.NoError(t, r.Start())
	t.Cleanup(func() { r.Shutdown(time.Minute) })
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
