package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// limitCase is the 429-heavy marketplace of figure 7: it answers HTTP 429
// (Retry-After: 1) to Rate429 of the calls at random, and to every call
// beyond Quota in one wall-clock second. Limit is the
// rate_limit_per_second put in the providers file for the second variant.
type limitCase struct {
	Conns       int
	Concurrency int
	Quota       int
	Limit       float64
	Rate429     float64
}

// LimitRun is one run of figure 7.
type LimitRun struct {
	Calls     int     // marketplace calls, 429s included
	Refreshed int     // tokens stored
	Limited   int     // calls answered 429
	Peak      int     // most calls in one wall-clock second
	Seconds   float64 // until every connection was refreshed
}

// LimitRow is one variant of figure 7: without and with
// rate_limit_per_second in the providers file.
type LimitRow struct {
	Limit float64 // 0: none configured
	Runs  []LimitRun
}

// CallsPerRefresh is the median of calls ÷ stored tokens.
func (l LimitRow) CallsPerRefresh() float64 {
	v := make([]float64, len(l.Runs))
	for i, r := range l.Runs {
		v[i] = float64(r.Calls) / float64(max(1, r.Refreshed))
	}
	return median(v)
}

// PeakRate is the median peak calls/s.
func (l LimitRow) PeakRate() float64 {
	v := make([]float64, len(l.Runs))
	for i, r := range l.Runs {
		v[i] = float64(r.Peak)
	}
	return median(v)
}

// LimitResult is figure 7.
type LimitResult struct {
	Case limitCase
	Rows []LimitRow
}

func (r *runner) limitSection(ctx context.Context, rep *Report) error {
	c := r.sz.limit
	f := r.sz.limitFleet()
	res := LimitResult{Case: c}
	for _, limit := range []float64{0, c.Limit} {
		row := LimitRow{Limit: limit}
		pf, err := r.providersFile(fmt.Sprintf("limit-%g", limit),
			providerEntry{Type: f.Type, TTL: 30 * time.Minute, Before: 10 * time.Minute, RateLimit: limit})
		if err != nil {
			return err
		}
		for run := range r.cfg.Runs {
			lr, err := r.limitRun(ctx, f, c, pf)
			if err != nil {
				return err
			}
			row.Runs = append(row.Runs, lr)
			r.logf("429-heavy, limit %g/s, run %d: %d calls for %d refreshes, %d answered 429, peak %d/s, %.1fs",
				limit, run+1, lr.Calls, lr.Refreshed, lr.Limited, lr.Peak, lr.Seconds)
		}
		res.Rows = append(res.Rows, row)
	}
	rep.Limit = res
	return nil
}

func (r *runner) limitRun(ctx context.Context, f fleet, c limitCase, providers string) (LimitRun, error) {
	if err := r.env.reset(ctx, f); err != nil {
		return LimitRun{}, err
	}
	q := r.env.newQueue("l")
	defer r.env.dropQueue(q)
	if err := r.enqueue(ctx, q, f); err != nil {
		return LimitRun{}, err
	}
	// A short backoff cap keeps the run short; the first retry still waits
	// for Retry-After.
	p, err := r.startRefresher(ctx, q, providers, c.Concurrency, map[string]string{"RETRY_MAX_DELAY": "5s"})
	if err != nil {
		return LimitRun{}, err
	}
	defer p.stop(time.Minute)
	st := r.market.reset(sandbox.Faults{RateLimitRate: c.Rate429, RetryAfterSeconds: 1}, c.Quota)
	took, _, err := r.drain(ctx, q, f.N, newCPUMeter(0), 10*time.Minute)
	if err != nil {
		return LimitRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	if err := p.stop(time.Minute); err != nil {
		return LimitRun{}, err
	}
	n, err := r.env.stored(ctx, f)
	if err != nil {
		return LimitRun{}, err
	}
	if n != f.N {
		return LimitRun{}, fmt.Errorf("%d of %d connections refreshed; %s", n, f.N, p.tail())
	}
	g := st.gate.stats()
	return LimitRun{
		Calls: g.calls, Refreshed: n, Limited: g.limited + st.sb.Stats().Faulted,
		Peak: g.peak, Seconds: took.Seconds(),
	}, nil
}

// Seconds is the median time to refresh every connection.
func (l LimitRow) Seconds() float64 {
	v := make([]float64, len(l.Runs))
	for i, r := range l.Runs {
		v[i] = r.Seconds
	}
	return median(v)
}
