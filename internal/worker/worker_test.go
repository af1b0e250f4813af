package worker_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

func noEnv(string) string { return "" }

// TestAssembly: what New builds from the entries and the settings — a
// breaker for every marketplace, a fleet-wide limiter only where the entry
// sets a rate, the weighted queues, IsFailure and the retry delay, the
// scheduling of the next refresh unless the tests turn it off, and
// webhooks only with endpoints.
func TestAssembly(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	entries, err := registry.Parse([]byte(`
providers:
  - integration_type: "16"
    kind: ajio
    base_url: http://127.0.0.1:1
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: http://127.0.0.1:1/oauth/token
    rate_limit_per_second: 5
`), "", noEnv)
	require.NoError(t, err)
	eng := worker.Engines{Redis: env.Redis, Log: zap.NewNop()}
	cfg, err := startup.LoadRefresher(func(k string) string {
		return map[string]string{"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms", "IE_DB_DSN": "root@tcp(127.0.0.1:3306)/ie",
			"REFRESH_QUEUE": env.Queue, "BREAKER_FAILURES": "3"}[k]
	})
	require.NoError(t, err)
	s := cfg.Settings
	assert.Equal(t, 3, s.Breaker.Failures)
	assert.Equal(t, env.Queue, s.Queue)

	r, err := worker.New(eng, entries, s)
	require.NoError(t, err)
	a := r.Assembly()
	assert.Equal(t, task.ServerQueues(env.Queue, 1), a.Queues)
	assert.False(t, a.StrictPriority)
	assert.True(t, a.IsFailure, "a deferred attempt spends no retry")
	assert.True(t, a.RetryDelay)
	assert.Equal(t, []string{task.TypeRefresh, task.TypeWake}, a.TaskTypes)
	assert.True(t, a.Scheduled)
	assert.False(t, a.Webhooks, "no WEBHOOK_URLS, no webhooks")
	assert.Equal(t, worker.MarketplaceAssembly{Kind: "ajio", RefreshBefore: 10 * time.Minute, Client: true, Breaker: true},
		a.Marketplaces["16"])
	assert.True(t, a.Marketplaces["42"].Limiter, "rate_limit_per_second gives a limiter")
	assert.True(t, a.Marketplaces["42"].Breaker)

	s.Unscheduled = true
	eps, err := webhook.ParseURLs("https://hooks.example.com/events")
	require.NoError(t, err)
	s.Webhooks = worker.Webhooks{Endpoints: eps, Secret: []byte("a-webhook-secret-of-32-bytes-000")}
	r, err = worker.New(eng, entries, s)
	require.NoError(t, err)
	a = r.Assembly()
	assert.False(t, a.Scheduled)
	assert.True(t, a.Webhooks)
}

// TestNewNamesTheOption: an entry New cannot build, or a bad outbox key, is
// a start-up error naming the option, and no environment variable.
func TestNewNamesTheOption(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	eng := worker.Engines{Redis: env.Redis, Log: zap.NewNop()}
	_, err := worker.New(eng, []registry.Entry{{IntegrationType: "9", Kind: "amazon"}}, worker.Settings{Queue: env.Queue, Getenv: noEnv})
	var oe *worker.OptionError
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Equal(t, worker.OptionProviders, oe.Option)
	assert.True(t, strings.HasPrefix(err.Error(), "invalid providers: "), err.Error())
	assert.NotContains(t, err.Error(), "PROVIDERS_FILE")

	_, err = worker.New(eng, nil, worker.Settings{Queue: env.Queue, Getenv: noEnv, OutboxKey: []byte("short")})
	require.True(t, errors.As(err, &oe), "%v", err)
	assert.Equal(t, worker.OptionOutboxKey, oe.Option)
	assert.NotContains(t, err.Error(), "short")
	assert.NotContains(t, err.Error(), "OUTBOX_KEY")
}
