package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/metrics"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func TestMarketplaceResponsesAreBoundedByCode(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.NewRefresher(reg)
	for _, s := range []int{200, 200, 429, 503, 0, 999, -1} {
		m.Answered("ajio", s)
	}
	m.Answered("unicommerce", 401)
	want := `
# HELP token_refresher_marketplace_responses_total Marketplace token calls by provider kind and HTTP status code ("none": no answer: network error or timeout).
# TYPE token_refresher_marketplace_responses_total counter
token_refresher_marketplace_responses_total{code="200",provider="ajio"} 2
token_refresher_marketplace_responses_total{code="429",provider="ajio"} 1
token_refresher_marketplace_responses_total{code="503",provider="ajio"} 1
token_refresher_marketplace_responses_total{code="none",provider="ajio"} 1
token_refresher_marketplace_responses_total{code="other",provider="ajio"} 2
token_refresher_marketplace_responses_total{code="401",provider="unicommerce"} 1
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "token_refresher_marketplace_responses_total"))
}

func TestCensusGauges(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.NewCensus(reg)
	m.Counted([]census.Count{{IntegrationType: "16", Provider: "ajio", Active: 7, Fresh: 3, Due: 1, Expired: 3, Failing: 2, ExpiredFailing: 2}})
	want := `
# HELP token_refresher_expired_connections Active connections whose stored token has already expired (or was never generated) at the last census. Minus expired_failing_connections, it must stay 0.
# TYPE token_refresher_expired_connections gauge
token_refresher_expired_connections{integration_type="16",provider="ajio"} 3
# HELP token_refresher_expired_failing_connections Of the expired connections, those whose refresh failed permanently (rejected credentials, malformed inputFields): they wait for new credentials.
# TYPE token_refresher_expired_failing_connections gauge
token_refresher_expired_failing_connections{integration_type="16",provider="ajio"} 2
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"token_refresher_expired_connections", "token_refresher_expired_failing_connections"))
	assert.Equal(t, 4, testutil.CollectAndCount(reg, "token_refresher_connections"), "fresh, due, expired, failing")

	m.Forget()
	for _, name := range []string{"token_refresher_connections", "token_refresher_expired_connections", "token_refresher_expired_failing_connections"} {
		assert.Zero(t, testutil.CollectAndCount(reg, name), "a process that stopped taking the census serves no %s", name)
	}
}

func TestQueueSizesFromRealRedis(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	q := task.NewQueue(env.Redis, env.Queue, time.Minute)
	for id := int64(1); id <= 3; id++ {
		queued, err := q.Enqueue(context.Background(), task.Payload{ConnectionID: id, IntegrationType: "16"})
		require.NoError(t, err)
		require.True(t, queued)
	}
	require.NoError(t, q.Inspector().ArchiveTask(env.Queue, task.ID(3)))

	reg := prometheus.NewRegistry()
	urgent := task.UrgentQueue(env.Queue)
	metrics.NewQueues(reg, q.Inspector(), env.Queue, urgent)
	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue()
		}
	}
	assert.Equal(t, 1.0, got["token_refresher_queue_info_up,queue="+env.Queue])
	assert.Equal(t, 2.0, got["token_refresher_queue_tasks,queue="+env.Queue+",state=pending"])
	assert.Equal(t, 1.0, got["token_refresher_queue_tasks,queue="+env.Queue+",state=archived"])
	assert.Equal(t, 0.0, got["token_refresher_queue_tasks,queue="+env.Queue+",state=active"])
	assert.Greater(t, got["token_refresher_queue_latency_seconds,queue="+env.Queue], 0.0, "two tasks wait")
	assert.Equal(t, 1.0, got["token_refresher_queue_info_up,queue="+urgent], "a queue never used is empty, not down")
	assert.Contains(t, got, "token_refresher_queue_tasks,queue="+urgent+",state=pending")
}

type brokenInspector struct{}

func (brokenInspector) Queues() ([]string, error) {
	return nil, errors.New("redis: connection refused")
}
func (brokenInspector) GetQueueInfo(string) (*asynq.QueueInfo, error) {
	return nil, errors.New("unreachable")
}

func TestQueueCollectorSurvivesRedisTrouble(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics.NewQueues(reg, brokenInspector{}, "token_refresh")
	want := `
# HELP token_refresher_queue_info_up 1 when the queue's state could be read from Redis at this scrape, 0 when not.
# TYPE token_refresher_queue_info_up gauge
token_refresher_queue_info_up{queue="token_refresh"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want)), "only the up gauge, at 0: /metrics keeps answering")
}

// TestBacklogGauges: the backlog gauges read the fleet-wide backlog in
// Redis at scrape time; a backlog Redis cannot serve turns its up gauge to
// 0 and drops the rest, and /metrics keeps answering.
func TestBacklogGauges(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	l := backlog.New(env.Redis, env.Queue, "16", backlog.Config{Interval: time.Minute, Window: 1, Horizon: time.Hour})
	ctx := context.Background()
	now := time.Now()
	for id, d := range map[int64]time.Duration{1: 30 * time.Second, 2: 10 * time.Minute, 3: -time.Hour} {
		exp := now.Add(d)
		_, err := l.Place(ctx, id, &exp, now, time.Minute)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for id := int64(1); id <= 3; id++ {
			l.Leave(context.Background(), id)
		}
	})
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { down.Close() })
	reg := prometheus.NewRegistry()
	metrics.NewBacklogs(reg, []backlog.Named{
		{IntegrationType: "16", Provider: "ajio", List: l},
		{IntegrationType: "43", Provider: "unicommerce", List: backlog.New(down, env.Queue, "43", backlog.Config{})},
	})
	// A slot a minute: the token expiring in 30 s lapses before its turn;
	// the one expiring in 10 minutes does not; one has already lapsed.
	want := `
# HELP token_refresher_at_risk_connections Live tokens that will lapse before their turn at the current pace: the backlog ahead of them, at the rate limit, takes longer than they have left.
# TYPE token_refresher_at_risk_connections gauge
token_refresher_at_risk_connections{integration_type="16",provider="ajio"} 1
# HELP token_refresher_backlog_connections Due connections waiting for a slot of the marketplace's rate limit, fleet-wide (served earliest expiry first).
# TYPE token_refresher_backlog_connections gauge
token_refresher_backlog_connections{integration_type="16",provider="ajio"} 3
# HELP token_refresher_backlog_lapsed_connections Of the backlog, connections whose token has already lapsed (served behind the live ones).
# TYPE token_refresher_backlog_lapsed_connections gauge
token_refresher_backlog_lapsed_connections{integration_type="16",provider="ajio"} 1
# HELP token_refresher_backlog_up 1 when the backlog could be read from Redis at this scrape, 0 when not.
# TYPE token_refresher_backlog_up gauge
token_refresher_backlog_up{integration_type="16",provider="ajio"} 1
token_refresher_backlog_up{integration_type="43",provider="unicommerce"} 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"token_refresher_at_risk_connections", "token_refresher_backlog_connections",
		"token_refresher_backlog_lapsed_connections", "token_refresher_backlog_up"))
}
