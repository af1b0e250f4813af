// Package metrics defines the Prometheus metrics of both binaries. Labels
// are bounded (integration type, provider kind, outcome): never a connection
// id, never a secret.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/writegate"
)

const ns = "token_refresher"

// NewRegistry returns a registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Scanner holds the scanner's metrics; it implements scan.Observer.
type Scanner struct {
	scans    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	due      *prometheus.GaugeVec
	active   *prometheus.GaugeVec
	tasks    *prometheus.CounterVec
}

var _ scan.Observer = (*Scanner)(nil)

// NewScanner registers the scanner's metrics on reg.
func NewScanner(reg prometheus.Registerer) *Scanner {
	m := &Scanner{
		scans: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "scans_total",
			Help: "Scans of an integration type, by result (ok or error)."}, []string{"integration_type", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "scan_duration_seconds",
			Help: "Time one scan of an integration type took.", Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10)},
			[]string{"integration_type"}),
		due: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "due_connections",
			Help: "Due connections found by the last scan."}, []string{"integration_type"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "active_connections",
			Help: "Active connections seen by the last scan."}, []string{"integration_type"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "scan_tasks_total",
			Help: "What scans did with due connections: enqueued, already_queued, retried, failing (cooling down) or error."},
			[]string{"integration_type", "result"}),
	}
	reg.MustRegister(m.scans, m.duration, m.due, m.active, m.tasks)
	return m
}

// Scanned implements scan.Observer.
func (m *Scanner) Scanned(r scan.Result, err error) {
	t := r.IntegrationType
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.scans.WithLabelValues(t, result).Inc()
	m.duration.WithLabelValues(t).Observe(r.Duration.Seconds())
	m.due.WithLabelValues(t).Set(float64(r.Due))
	m.active.WithLabelValues(t).Set(float64(r.Active))
	m.tasks.WithLabelValues(t, "enqueued").Add(float64(r.Enqueued))
	m.tasks.WithLabelValues(t, "already_queued").Add(float64(r.AlreadyQueued))
	m.tasks.WithLabelValues(t, "retried").Add(float64(r.Retried))
	m.tasks.WithLabelValues(t, "failing").Add(float64(r.Failing))
	m.tasks.WithLabelValues(t, "error").Add(float64(r.Errors))
	m.tasks.WithLabelValues(t, "own_clock").Add(float64(r.OwnClock))
}

// Refresher holds the refresher's metrics; it implements refresh.Observer
// and provider.StatusObserver.
type Refresher struct {
	attempts  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	remaining *prometheus.HistogramVec
	responses *prometheus.CounterVec
	short     *prometheus.CounterVec
	writable  prometheus.Gauge
	kept      prometheus.Gauge
	keptDone  *prometheus.CounterVec
}

var (
	_ refresh.Observer         = (*Refresher)(nil)
	_ refresh.LifetimeObserver = (*Refresher)(nil)
	_ refresh.KeptObserver     = (*Refresher)(nil)
	_ writegate.Observer       = (*Refresher)(nil)
	_ provider.StatusObserver  = (*Refresher)(nil)
)

// NewRefresher registers the refresher's metrics on reg.
func NewRefresher(reg prometheus.Registerer) *Refresher {
	m := &Refresher{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refresh_attempts_total",
			Help: "Refresh attempts by provider kind and outcome."}, []string{"provider", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "refresh_duration_seconds",
			Help: "Time one refresh attempt took (load, marketplace call, write).", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 10)},
			[]string{"provider"}),
		remaining: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "token_remaining_seconds_at_refresh",
			Help:    "Lifetime the stored token had left when its refresh started (negative: already expired).",
			Buckets: []float64{-3600, -60, 0, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 86400}}, []string{"provider"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "marketplace_responses_total",
			Help: "Marketplace token calls by provider kind and HTTP status code (\"none\": no answer: network error or timeout)."},
			[]string{"provider", "code"}),
	}
	m.short = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "short_lifetime_tokens_total",
		Help: "Tokens stored whose lifetime is shorter than the provider's refresh_before (refreshed a third of their lifetime before expiry)."},
		[]string{"provider"})
	m.writable = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "database_writable",
		Help: "1 while the database takes writes as this refresher last saw it; 0 while it refuses them (read-only, unreachable): no marketplace calls are made then, and /readyz says why."})
	m.kept = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "kept_tokens",
		Help: "Tokens obtained from a marketplace whose write the database refused, kept in the outbox until stored (the durable outbox is fleet-wide: every replica reports all of it)."})
	m.keptDone = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "kept_tokens_done_total",
		Help: "Kept tokens taken out of the outbox, by result: stored, superseded (the row holds it or a newer token) or expired (its access token lapsed first, and it carried no new refresh token)."},
		[]string{"result"})
	reg.MustRegister(m.attempts, m.duration, m.remaining, m.responses, m.short, m.writable, m.kept, m.keptDone)
	return m
}

// Writable implements writegate.Observer.
func (m *Refresher) Writable(open bool) {
	if open {
		m.writable.Set(1)
	} else {
		m.writable.Set(0)
	}
}

// KeptTokens implements refresh.KeptObserver.
func (m *Refresher) KeptTokens(n int) { m.kept.Set(float64(n)) }

// KeptTokenDone implements refresh.KeptObserver.
func (m *Refresher) KeptTokenDone(result string) { m.keptDone.WithLabelValues(result).Inc() }

// Answered implements provider.StatusObserver. The code label is bounded:
// a valid HTTP status, "none" or "other".
func (m *Refresher) Answered(kind string, status int) {
	m.responses.WithLabelValues(kind, statusLabel(status)).Inc()
}

func statusLabel(status int) string {
	switch {
	case status == 0:
		return "none"
	case status >= 100 && status <= 599:
		return strconv.Itoa(status)
	default:
		return "other"
	}
}

// ShortLifetime implements refresh.LifetimeObserver.
func (m *Refresher) ShortLifetime(kind string) { m.short.WithLabelValues(kind).Inc() }

// Attempted implements refresh.Observer.
func (m *Refresher) Attempted(kind string, o refresh.Outcome, took, remaining time.Duration, hadToken bool) {
	m.attempts.WithLabelValues(kind, string(o)).Inc()
	m.duration.WithLabelValues(kind).Observe(took.Seconds())
	if hadToken && o != refresh.NotDue && o != refresh.Inactive && o != refresh.Satisfied {
		m.remaining.WithLabelValues(kind).Observe(remaining.Seconds())
	}
}
