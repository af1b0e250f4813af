package bench

import (
	"context"
	"time"

	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// LatencyRow is figure 3 for one concurrency and marketplace latency: the
// product's refresh rate against the ideal concurrency ÷ latency.
type LatencyRow struct {
	Concurrency int
	Latency     time.Duration
	N           int
	Runs        []drainRun
}

// Ideal is concurrency ÷ latency, refreshes/s.
func (l LatencyRow) Ideal() float64 { return float64(l.Concurrency) / l.Latency.Seconds() }

// Rate is the median measured rate.
func (l LatencyRow) Rate() float64 { return median(rates(l.Runs)) }

// Bound is the rate to compare with: the ideal, or the product's 0 ms rate of
// figure 2 when that is lower (the machine, not the latency, is the bound).
func (l LatencyRow) Bound(ceiling float64) float64 { return min(l.Ideal(), ceiling) }

func (r *runner) latencySection(ctx context.Context, rep *Report) error {
	main := r.sz.mainFleet()
	for _, c := range r.sz.latency {
		f := main.sub(c.Concurrency * r.sz.waves)
		row := LatencyRow{Concurrency: c.Concurrency, Latency: c.Latency, N: f.N}
		for run := range r.cfg.Runs {
			d, err := r.drainProduct(ctx, f, c.Concurrency, sandbox.Faults{Latency: c.Latency}, false)
			if err != nil {
				return err
			}
			row.Runs = append(row.Runs, d)
			r.logf("latency %s c=%d N=%d run %d: %.0f/s (ideal %.0f/s), peak RSS %.1f MB",
				c.Latency, c.Concurrency, f.N, run+1, d.Rate, row.Ideal(), mb(d.Peak))
		}
		rep.Latency = append(rep.Latency, row)
	}
	return nil
}
