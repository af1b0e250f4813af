package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eshopbox/token-refresher/internal/backlog"
)

// Backlogs collects, at scrape time, each rate-limited marketplace's
// backlog (internal/backlog): the due connections waiting for a rate slot,
// and those that will lapse at the current pace. The backlog is fleet-wide,
// so every replica reports all of it (alert on max).
type Backlogs struct {
	lists   []backlog.Named
	waiting *prometheus.Desc
	lapsed  *prometheus.Desc
	atRisk  *prometheus.Desc
	slack   *prometheus.Desc
	up      *prometheus.Desc
}

var _ prometheus.Collector = (*Backlogs)(nil)

// NewBacklogs registers a collector of lists on reg.
func NewBacklogs(reg prometheus.Registerer, lists []backlog.Named) *Backlogs {
	labels := []string{"integration_type", "provider"}
	c := &Backlogs{
		lists: lists,
		waiting: prometheus.NewDesc(ns+"_backlog_connections",
			"Due connections waiting for a slot of the marketplace's rate limit, fleet-wide (served earliest expiry first).",
			labels, nil),
		lapsed: prometheus.NewDesc(ns+"_backlog_lapsed_connections",
			"Of the backlog, connections whose token has already lapsed (served behind the live ones).",
			labels, nil),
		atRisk: prometheus.NewDesc(ns+"_at_risk_connections",
			"Live tokens that will lapse before their turn at the current pace: the backlog ahead of them, at the rate limit, takes longer than they have left.",
			labels, nil),
		slack: prometheus.NewDesc(ns+"_backlog_least_slack_seconds",
			"The least lifetime a waiting live token will have left when its turn comes, at the rate limit (negative: it lapses first; 0 when none waits).",
			labels, nil),
		up: prometheus.NewDesc(ns+"_backlog_up",
			"1 when the backlog could be read from Redis at this scrape, 0 when not.",
			labels, nil),
	}
	reg.MustRegister(c)
	return c
}

// Describe implements prometheus.Collector.
func (c *Backlogs) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.waiting, c.lapsed, c.atRisk, c.slack, c.up} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Redis trouble turns only that
// marketplace's up gauge to 0.
func (c *Backlogs) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	now := time.Now()
	for _, n := range c.lists {
		lv := []string{n.IntegrationType, n.Provider}
		f, err := n.List.Forecast(ctx, now)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0, lv...)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1, lv...)
		ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(f.Waiting), lv...)
		ch <- prometheus.MustNewConstMetric(c.lapsed, prometheus.GaugeValue, float64(f.Lapsed), lv...)
		ch <- prometheus.MustNewConstMetric(c.atRisk, prometheus.GaugeValue, float64(f.AtRisk), lv...)
		ch <- prometheus.MustNewConstMetric(c.slack, prometheus.GaugeValue, f.LeastSlack.Seconds(), lv...)
	}
}
