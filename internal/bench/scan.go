package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// ScanRow is figure 1 for one fleet size: a full scan that finds N due
// connections and enqueues them, against asynq enqueueing the same N tasks
// with nothing else to do, at the same concurrency. Rates are tasks/s.
type ScanRow struct {
	N           int
	Concurrency int
	Bare        []float64
	Product     []float64
}

// Ratio is the median over runs of the product rate over the bare rate of
// the same run.
func (s ScanRow) Ratio() float64 { return pairedRatio(s.Product, s.Bare) }

// taskTimeout is the product's default REFRESH_TIMEOUT, which every task
// carries.
const taskTimeout = 2 * time.Minute

func (r *runner) scanSection(ctx context.Context, rep *Report) error {
	store, err := mysql.Open(ctx, r.env.wmsDSN, r.env.ieDSN, mysql.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	return profile(r.cfg.CPUProfile, func() error {
		for i, n := range r.sz.scanNs {
			f := scanFleet(i, n)
			row := ScanRow{N: n, Concurrency: r.sz.scanConc}
			for run := range r.scanRuns() {
				bare, err := r.bareEnqueue(ctx, f, row.Concurrency)
				if err != nil {
					return err
				}
				prod, err := r.scanEnqueue(ctx, store, f, row.Concurrency)
				if err != nil {
					return err
				}
				row.Bare = append(row.Bare, bare)
				row.Product = append(row.Product, prod)
				r.logf("scan N=%d run %d: bare enqueue %.0f/s, scan + enqueue %.0f/s", n, run+1, bare, prod)
			}
			rep.Scan = append(rep.Scan, row)
		}
		return nil
	})
}

// scanRuns is the runs of figure 1: at least 5 outside quick mode, as its
// runs are short and the shared machine's noise is of the size of the gap.
func (r *runner) scanRuns() int {
	if r.cfg.Quick {
		return r.cfg.Runs
	}
	return max(r.cfg.Runs, 5)
}

// bareEnqueue enqueues f's N tasks (the product's own task: same type, id,
// payload and options) into a fresh queue from conc goroutines, with
// asynq's client and nothing else.
func (r *runner) bareEnqueue(ctx context.Context, f fleet, conc int) (float64, error) {
	q := r.env.newQueue("e")
	defer r.env.dropQueue(q)
	client := asynq.NewClientFromRedisClient(r.env.rdb)
	rate, err := parallel(ctx, conc, f.N, func(ctx context.Context, i int) error {
		t, err := task.New(payloadOf(f, f.First+int64(i)), q, taskTimeout)
		if err == nil {
			_, err = client.EnqueueContext(ctx, t)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bare enqueue: %w", err)
	}
	if sz, err := r.env.queueSize(ctx, q); err != nil || sz.pending != int64(f.N) {
		return 0, fmt.Errorf("bare enqueue: %d pending, want %d (%v)", sz.pending, f.N, err)
	}
	return rate, nil
}

// scanEnqueue is one scan of f's integration type by the product's scanner
// into a fresh queue.
func (r *runner) scanEnqueue(ctx context.Context, store *mysql.Store, f fleet, conc int) (float64, error) {
	q := r.env.newQueue("s")
	defer r.env.dropQueue(q)
	s := scan.New(store, task.NewQueue(r.env.rdb, q, taskTimeout), scan.Config{
		Targets:     []token.Target{{IntegrationType: f.Type, Kind: "ajio", RefreshBefore: 10 * time.Minute}},
		Concurrency: conc,
	}, zap.NewNop(), nil)
	start := time.Now()
	res, err := s.RunOnce(ctx)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res[0].Enqueued != f.N {
		return 0, fmt.Errorf("scan enqueued %d, want %d", res[0].Enqueued, f.N)
	}
	return float64(f.N) / took.Seconds(), nil
}

func payloadOf(f fleet, id int64) task.Payload {
	exp := stale
	return task.Payload{ConnectionID: id, IntegrationType: f.Type, DueExpiry: &exp}
}

// MemRow is the scanner's peak RSS (bytes) over runs of `scanner --once`
// finding and enqueueing N due connections.
type MemRow struct {
	N    int
	Peak []int64
	Took []float64 // seconds, the whole process
}

// scannerMemory runs bin/scanner --once on each scan fleet and reads its
// peak resident set from the kernel when it exits.
func (r *runner) scannerMemory(ctx context.Context, rep *Report) error {
	for i, n := range r.sz.scanNs {
		f := scanFleet(i, n)
		row := MemRow{N: n}
		pf, err := r.providersFile("scan-"+f.Type, providerEntry{Type: f.Type, TTL: 30 * time.Minute, Before: 10 * time.Minute})
		if err != nil {
			return err
		}
		for run := range r.cfg.Runs {
			q := r.env.newQueue("m")
			start := time.Now()
			p, err := r.env.start(r.cfg.BinDir, "scanner", []string{"--once"}, r.vars(q, pf, map[string]string{
				"SCAN_CONCURRENCY": strconv.Itoa(r.sz.scanConc),
			}))
			if err != nil {
				return err
			}
			err = p.wait(10 * time.Minute)
			took := time.Since(start)
			if err != nil {
				return err
			}
			peak, err := p.maxRSS()
			if err != nil {
				return err
			}
			sz, err := r.env.queueSize(ctx, q)
			if err != nil {
				return err
			}
			if sz.pending != int64(n) {
				return fmt.Errorf("scanner --once enqueued %d, want %d; %s", sz.pending, n, p.tail())
			}
			if err := r.env.dropQueue(q); err != nil {
				return err
			}
			row.Peak = append(row.Peak, peak)
			row.Took = append(row.Took, took.Seconds())
			r.logf("scanner --once N=%d run %d: peak RSS %.1f MB, %.2fs", n, run+1, mb(peak), took.Seconds())
		}
		rep.ScannerMemory = append(rep.ScannerMemory, row)
	}
	return nil
}

// providerEntry is one entry of a providers file the bench writes.
type providerEntry struct {
	Type      string
	TTL       time.Duration
	Before    time.Duration
	RateLimit float64
}

// providersFile writes a providers file of ajio entries pointing at the
// market.
func (r *runner) providersFile(name string, entries ...providerEntry) (string, error) {
	path := r.env.tmp + "/providers-" + name + ".yaml"
	s := "providers:\n"
	for _, e := range entries {
		s += fmt.Sprintf("  - integration_type: %q\n    kind: ajio\n    base_url: %s\n    token_ttl: %s\n    refresh_before: %s\n    timeout: 10s\n",
			e.Type, r.market.url, e.TTL, e.Before)
		if e.RateLimit > 0 {
			s += fmt.Sprintf("    rate_limit_per_second: %g\n", e.RateLimit)
		}
	}
	return path, os.WriteFile(path, []byte(s), 0o600)
}

// vars is the environment of a product process on queue q.
func (r *runner) vars(q, providers string, extra map[string]string) map[string]string {
	v := map[string]string{
		"WMS_DB_DSN":     r.env.wmsDSN,
		"IE_DB_DSN":      r.env.ieDSN,
		"REDIS_URL":      r.env.redisURL,
		"PROVIDERS_FILE": providers,
		"REFRESH_QUEUE":  q,
		"LOG_FORMAT":     "json",
		"LOG_LEVEL":      "info",
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

func mb(b int64) float64 { return float64(b) / 1e6 }
