// Package bench measures the product against its ceilings on the machine it
// runs on: the real MariaDB and Redis, the sandbox marketplace on a real
// loopback port, and the real bin/scanner and bin/refresher processes. Each
// figure is the median of several runs, and each product figure sits beside
// the ceiling it is compared with, measured in the same run, so the ratios
// mean something on a noisy shared machine. cmd/bench turns the Report into
// docs/benchmarks.md.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"
)

// Config of a bench run.
type Config struct {
	// BinDir holds the scanner and refresher binaries (make build's bin/).
	BinDir string
	// MySQLDSN is a server-level DSN allowed to create and drop databases.
	MySQLDSN string
	// RedisAddr is host:port of the Redis asynq uses.
	RedisAddr string
	// Quick is a smoke run on tiny fleets, one run per figure: it proves
	// the bench works; its figures mean little.
	Quick bool
	// Million adds N = 1,000,000 to the scan figures (slow: several
	// minutes of seeding and enqueueing).
	Million bool
	// Runs per figure (default 3; 1 in quick mode).
	Runs int
	// CPUProfile, when set, is a file for a CPU profile of this process
	// during the scan + enqueue figures (the scanner runs in-process there).
	CPUProfile string
	// Only limits the run to these figures (names in Figures); empty: all.
	Only []string
	// CapacityN is the connections of figure 10's simulation (0: 1,000,000,
	// quick 6,000).
	CapacityN int
	// Log receives progress lines (nil: discarded).
	Log io.Writer
}

// Figures are the names of the measurements, in the order they run.
var Figures = []string{"scan", "scanmem", "drain", "latency", "naive", "fresh", "limit", "overload", "costs", "capacity"}

// OptIn are the figures a run makes only when -only names them: figure 10
// (capacity) simulates a million connections for half an hour.
var OptIn = []string{"capacity"}

// sizes are the fleets and durations of a run.
type sizes struct {
	scanNs    []int
	scanConc  int
	drainN    int
	drainConc int
	latency   []latencyCase
	waves     int // tasks per worker in a latency run
	naiveN    int
	naiveSlow naiveCase
	fresh     []freshCase
	limit     limitCase
	overload  overloadCase
	costs     costsCase
	capacity  capacityCase
}

type latencyCase struct {
	Concurrency int
	Latency     time.Duration
}

type naiveCase struct {
	N       int
	Latency time.Duration
}

func sizesFor(cfg Config) sizes {
	if cfg.Quick {
		q := sizes{
			scanNs: []int{100, 1000}, scanConc: 16,
			drainN: 200, drainConc: 50,
			latency: []latencyCase{{10, 20 * time.Millisecond}, {50, 20 * time.Millisecond}},
			waves:   4,
			naiveN:  100, naiveSlow: naiveCase{N: 5, Latency: 20 * time.Millisecond},
			fresh: []freshCase{{Conns: 60, TTL: 6 * time.Second, Before: 3 * time.Second, Interval: time.Second,
				Run: 8 * time.Second, Latency: 10 * time.Millisecond, Concurrency: 20}},
			limit: limitCase{Conns: 40, Concurrency: 20, Quota: 30, Limit: 20, Rate429: 0.2},
			overload: overloadCase{Conns: 40, Urgent: 20, UrgentFrom: 5 * time.Second, UrgentTo: 10 * time.Second,
				LaterFrom: 6 * time.Minute, LaterTo: 11 * time.Minute, Concurrency: 20, Rates: []float64{10, 20}},
			costs: costsCase{Fleet: 2000, Foreign: 200, Due: 100, ScanInterval: 3 * time.Second, FullScanInterval: 10 * time.Minute,
				Warmup: 3 * time.Second, Settle: 2 * time.Second, BufferPool: "64M",
				Variants: []costsVariant{{Window: 6 * time.Second}, {RateLimit: 100_000, Window: 6 * time.Second}}},
			capacity: capacityCase{N1: 1000, N2: 6000, TTL1: 12 * time.Second, Before1: 4 * time.Second,
				TTL2: 20 * time.Second, Before2: 6 * time.Second, ScanInterval: time.Second, FullScanInterval: 10 * time.Minute,
				Concurrency: 64, Replicas: 2, Idle: 3 * time.Second, Lead: 8 * time.Second, ProbeTasks: 500, BufferPool: "128M"},
		}
		if cfg.CapacityN > 0 {
			q.capacity.N2 = cfg.CapacityN
		}
		return q
	}
	s := sizes{
		scanNs: []int{10_000, 100_000}, scanConc: 16,
		drainN: 10_000, drainConc: 50,
		latency: []latencyCase{
			{100, 50 * time.Millisecond}, {100, 200 * time.Millisecond},
			{500, 50 * time.Millisecond}, {500, 200 * time.Millisecond},
		},
		waves:  20,
		naiveN: 10_000, naiveSlow: naiveCase{N: 100, Latency: 50 * time.Millisecond},
		// SCAN_INTERVAL 2 s, and 60 s: a scanner may scan at most every
		// refresh_before/2, so the second case has a 2-minute window over
		// 3-minute tokens (refreshed a third of their lifetime, 1 minute,
		// before expiry) and runs long enough for scheduled generations.
		fresh: []freshCase{
			{Conns: 3000, TTL: 30 * time.Second, Before: 10 * time.Second, Interval: 2 * time.Second,
				Run: 45 * time.Second, Latency: 50 * time.Millisecond, Concurrency: 50},
			{Conns: 3000, TTL: 3 * time.Minute, Before: 2 * time.Minute, Interval: time.Minute,
				Run: 4 * time.Minute, Latency: 50 * time.Millisecond, Concurrency: 50},
		},
		limit: limitCase{Conns: 1500, Concurrency: 50, Quota: 200, Limit: 150, Rate429: 0.2},
		// The scenario: 400 due at once, 200 expiring within
		// 25-50 s, at two rate limits.
		overload: overloadCase{Conns: 400, Urgent: 200, UrgentFrom: 25 * time.Second, UrgentTo: 50 * time.Second,
			LaterFrom: 6 * time.Minute, LaterTo: 11 * time.Minute, Concurrency: 20, Rates: []float64{5, 10}},
		// Issue 21's fleet. The idle windows are whole CENSUS_INTERVALs
		// (1m by default) and SCAN_INTERVALs long; the first, whose DB
		// figure is the headline, is the longer. The product runs without
		// a rate limit, then with one that never binds (its limiter's
		// and backlog's commands counted).
		costs: costsCase{Fleet: 200_000, Foreign: 20_000, Due: 2000, ScanInterval: 3 * time.Second, FullScanInterval: 10 * time.Minute,
			Warmup: 20 * time.Second, Settle: 10 * time.Second, BufferPool: "256M",
			Variants: []costsVariant{{Window: 2 * time.Minute}, {RateLimit: 100_000, Window: time.Minute}}},
	}
	// Figure 10: unit costs on 20,000 connections over one generation of
	// 7m30s tokens due 2m before expiry (61 refreshes a second), then
	// 1,000,000 connections over one generation of 30m tokens due 8m
	// before expiry (758 a second), both at the default SCAN_INTERVAL
	// (1m, at most half of refresh_before) and FULL_SCAN_INTERVAL.
	s.capacity = capacityCase{N1: 20_000, N2: 1_000_000, TTL1: 7*time.Minute + 30*time.Second, Before1: 2 * time.Minute,
		TTL2: 30 * time.Minute, Before2: 8 * time.Minute, ScanInterval: time.Minute, FullScanInterval: 10 * time.Minute,
		Concurrency: 64, Replicas: 2, Idle: 20 * time.Second, Lead: 45 * time.Second, ProbeTasks: 10_000, BufferPool: "1G"}
	if cfg.CapacityN > 0 {
		s.capacity.N2 = cfg.CapacityN
	}
	if cfg.Million {
		s.scanNs = append(s.scanNs, 1_000_000)
	}
	return s
}

// The fleets: one integration type per purpose, so each scan reads only its
// own. Type 16 is the fleet the refresher figures use (drainN, all due).
func (s sizes) mainFleet() fleet { return fleet{Type: "16", First: 1, N: s.drainN} }

func scanFleet(i, n int) fleet {
	return fleet{Type: fmt.Sprint(30 + i), First: int64(10_000_000 * (i + 1)), N: n}
}

func (s sizes) freshFleet() fleet {
	n := 0
	for _, c := range s.fresh {
		n = max(n, c.Conns)
	}
	return fleet{Type: "20", First: 100_000_000, N: n}
}

func (s sizes) limitFleet() fleet {
	return fleet{Type: "21", First: 110_000_000, N: s.limit.Conns}
}

// runner is one bench run.
type runner struct {
	cfg    Config
	sz     sizes
	env    *env
	market *market
	log    io.Writer
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.log, "%s bench: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run measures everything and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 3
		if cfg.Quick {
			cfg.Runs = 1
		}
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	for _, f := range cfg.Only {
		if !slices.Contains(Figures, f) {
			return nil, fmt.Errorf("unknown figure %q (one of %v)", f, Figures)
		}
	}
	for _, b := range []string{"scanner", "refresher"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s (make build puts it there): %w", b, cfg.BinDir, err)
		}
	}
	r := &runner{cfg: cfg, sz: sizesFor(cfg), log: cfg.Log}
	rep := &Report{Quick: cfg.Quick, Runs: cfg.Runs, Million: cfg.Million, Only: cfg.Only, Started: time.Now().UTC(), Load: map[string]string{}}

	var err error
	if r.env, err = newEnv(ctx, cfg.MySQLDSN, cfg.RedisAddr); err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.env.close(); cerr != nil {
			r.logf("cleanup: %v", cerr)
		}
	}()
	rep.ID = r.env.id
	if r.market, err = newMarket(); err != nil {
		return nil, err
	}
	defer r.market.close()
	if rep.Machine, err = r.machine(ctx); err != nil {
		return nil, err
	}
	r.logf("run %s on %s (%d CPUs), %d runs per figure; databases %s, %s", r.env.id, rep.Machine.CPU,
		rep.Machine.CPUs, cfg.Runs, r.env.wmsDB, r.env.ieDB)

	if r.needsSharedFleets() {
		if err := r.seedAll(ctx); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{"scan", r.scanSection},
		{"scanmem", r.scannerMemory},
		{"drain", r.drainSection},
		{"latency", r.latencySection},
		{"naive", r.naiveSection},
		{"fresh", r.freshSection},
		{"limit", r.limitSection},
		{"overload", r.overloadSection},
		{"costs", r.costsSection},
		{"capacity", r.capacitySection},
	}
	for _, s := range steps {
		if len(cfg.Only) > 0 && !slices.Contains(cfg.Only, s.name) || len(cfg.Only) == 0 && slices.Contains(OptIn, s.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		rep.Load[s.name] = loadAvg()
		r.logf("%s …", s.name)
		if err := s.fn(ctx, rep); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		r.logf("%s done in %s", s.name, time.Since(start).Round(100*time.Millisecond))
	}
	rep.Machine.LoadAfter = loadAvg()
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

// needsSharedFleets reports whether a figure run uses the fleets seedAll
// makes; overload and costs seed their own.
func (r *runner) needsSharedFleets() bool {
	if len(r.cfg.Only) == 0 {
		return true
	}
	for _, f := range r.cfg.Only {
		if f != "overload" && f != "costs" && f != "capacity" {
			return true
		}
	}
	return false
}

func (r *runner) seedAll(ctx context.Context) error {
	start := time.Now()
	due := func(int64) *time.Time { return &stale }
	fleets := []fleet{r.sz.mainFleet(), r.sz.limitFleet()}
	for i, n := range r.sz.scanNs {
		fleets = append(fleets, scanFleet(i, n))
	}
	total := 0
	for _, f := range fleets {
		if err := r.env.seed(ctx, f, due); err != nil {
			return err
		}
		total += f.N
	}
	if err := r.env.seed(ctx, r.sz.freshFleet(), func(int64) *time.Time { return nil }); err != nil {
		return err
	}
	r.logf("seeded %d connections in %s", total+r.sz.freshFleet().N, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// profile runs fn under a CPU profile written to path (when set).
func profile(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	ferr := fn()
	pprof.StopCPUProfile()
	return errors.Join(ferr, f.Close())
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
