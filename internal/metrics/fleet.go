package metrics

import (
	"slices"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eshopbox/token-refresher/internal/census"
)

// Census holds the gauges of connections by token state; it implements
// census.Observer.
type Census struct {
	connections    *prometheus.GaugeVec
	expired        *prometheus.GaugeVec
	expiredFailing *prometheus.GaugeVec
}

var _ census.Gauges = (*Census)(nil)

// NewCensus registers the census gauges on reg.
func NewCensus(reg prometheus.Registerer) *Census {
	labels := []string{"integration_type", "provider"}
	m := &Census{
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "connections",
			Help: "Active connections by token state at the last census: fresh, due, expired (or never generated), failing (an archived refresh; overlaps the others)."},
			append(labels, "state")),
		expired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "expired_connections",
			Help: "Active connections whose stored token has already expired (or was never generated) at the last census. Minus expired_failing_connections, it must stay 0."},
			labels),
		expiredFailing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "expired_failing_connections",
			Help: "Of the expired connections, those whose refresh failed permanently (rejected credentials, malformed inputFields): they wait for new credentials."},
			labels),
	}
	reg.MustRegister(m.connections, m.expired, m.expiredFailing)
	return m
}

// Counted implements census.Observer.
func (m *Census) Counted(counts []census.Count) {
	for _, c := range counts {
		t, p := c.IntegrationType, c.Provider
		m.connections.WithLabelValues(t, p, "fresh").Set(float64(c.Fresh))
		m.connections.WithLabelValues(t, p, "due").Set(float64(c.Due))
		m.connections.WithLabelValues(t, p, "expired").Set(float64(c.Expired))
		m.connections.WithLabelValues(t, p, "failing").Set(float64(c.Failing))
		m.expired.WithLabelValues(t, p).Set(float64(c.Expired))
		m.expiredFailing.WithLabelValues(t, p).Set(float64(c.ExpiredFailing))
	}
}

// Forget implements census.Gauges: it drops every census series, for a
// process that stopped taking the census (it lost the census lease).
func (m *Census) Forget() {
	m.connections.Reset()
	m.expired.Reset()
	m.expiredFailing.Reset()
}

// QueueInspector is the part of asynq.Inspector the queue collector reads.
type QueueInspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
}

var _ QueueInspector = (*asynq.Inspector)(nil)

// Queues collects the sizes and latency of asynq queues at scrape time.
type Queues struct {
	inspector QueueInspector
	queues    []string
	size      *prometheus.Desc
	latency   *prometheus.Desc
	up        *prometheus.Desc
}

var _ prometheus.Collector = (*Queues)(nil)

// NewQueues registers a collector of the given queues on reg.
func NewQueues(reg prometheus.Registerer, inspector QueueInspector, queues ...string) *Queues {
	c := &Queues{
		inspector: inspector,
		queues:    queues,
		size: prometheus.NewDesc(ns+"_queue_tasks",
			"Tasks in an asynq queue by state (pending, active, scheduled, retry, archived, completed).",
			[]string{"queue", "state"}, nil),
		latency: prometheus.NewDesc(ns+"_queue_latency_seconds",
			"Age of the oldest pending task of an asynq queue (0 when none is pending).",
			[]string{"queue"}, nil),
		up: prometheus.NewDesc(ns+"_queue_info_up",
			"1 when the queue's state could be read from Redis at this scrape, 0 when not.",
			[]string{"queue"}, nil),
	}
	reg.MustRegister(c)
	return c
}

// Describe implements prometheus.Collector.
func (c *Queues) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.size
	ch <- c.latency
	ch <- c.up
}

// Collect implements prometheus.Collector. A queue that does not exist yet
// (nothing was ever enqueued) is empty, not an error; Redis trouble turns
// only that queue's up gauge to 0, so /metrics keeps answering.
func (c *Queues) Collect(ch chan<- prometheus.Metric) {
	known, listErr := c.inspector.Queues()
	for _, q := range c.queues {
		info, err := &asynq.QueueInfo{Queue: q}, listErr
		if err == nil && slices.Contains(known, q) {
			info, err = c.inspector.GetQueueInfo(q)
		}
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0, q)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1, q)
		for state, n := range map[string]int{
			"pending": info.Pending, "active": info.Active, "scheduled": info.Scheduled,
			"retry": info.Retry, "archived": info.Archived, "completed": info.Completed,
		} {
			ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n), q, state)
		}
		ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, info.Latency.Seconds(), q)
	}
}
