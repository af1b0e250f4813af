package demo

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// TestDemoRunsTheProductionRefresher holds the demo to "the demo runs the
// refresher": the refresher the demo assembles is the one cmd/refresher
// assembles from its environment (internal/startup) for the same
// providers, in everything but intervals and sizes: queues and their
// weights, IsFailure, the retry delay, the task types, the scheduling of
// the next refresh, webhooks, and each marketplace's client, breaker and
// limiter. A demo wiring that drops any of them fails here.
func TestDemoRunsTheProductionRefresher(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	var demo worker.Assembly
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := Config{Addr: "127.0.0.1:0", Queue: env.Queue, Assembled: func(a worker.Assembly) { demo = a }}
	cfg.Ready = func(Endpoints) { cancel() }
	_, err := Run(ctx, cfg)
	require.NoError(t, err)
	require.NotEmpty(t, demo.Marketplaces, "the demo reported its refresher")

	prodCfg, err := startup.LoadRefresher(func(k string) string {
		return map[string]string{
			"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms", "IE_DB_DSN": "root@tcp(127.0.0.1:3306)/ie",
			"REFRESH_QUEUE": env.Queue,
			"WEBHOOK_URLS":  "https://hooks.example.com/events", "WEBHOOK_SECRET": "a-webhook-secret-of-32-bytes-000",
			"OUTBOX_KEY": outbox.GenerateKey(),
		}[k]
	})
	require.NoError(t, err)
	cfg.defaults()
	entries, _, err := build(cfg.Kinds, "http://127.0.0.1:1", cfg.Timing)
	require.NoError(t, err)
	store, err := mysql.Open(context.Background(), env.WMSDSN, env.IEDSN, mysql.Options{})
	require.NoError(t, err)
	defer store.Close()
	prod, err := worker.New(worker.Engines{Store: store, Redis: env.Redis, Log: zap.NewNop()}, entries,
		prodCfg.Settings)
	require.NoError(t, err)
	want := prod.Assembly()

	assert.Equal(t, want, demo)
	// What production has, stated, so the comparison cannot pass on two
	// equally bare wirings.
	assert.True(t, want.IsFailure && want.RetryDelay && want.Scheduled && want.Webhooks && want.WriteGate && want.DurableOutbox)
	assert.False(t, want.StrictPriority)
	assert.Len(t, want.TaskTypes, 2)
	for it, m := range want.Marketplaces {
		assert.True(t, m.Client && m.Breaker, "integration type %s", it)
	}
}
