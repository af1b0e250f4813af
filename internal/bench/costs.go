package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
)

// costsCase is figure 9 (issue 21): what the product costs the databases
// and Redis, by counts, on a fleet of Fleet connections plus Foreign rows
// of an integration type no providers entry names, NULL expiry.
type costsCase struct {
	Fleet, Foreign int
	// Due is how many connections a burst of phase 2 makes due at once.
	Due              int
	ScanInterval     time.Duration
	FullScanInterval time.Duration // FULL_SCAN_INTERVAL given to the scanner
	// Warmup after the processes start (the scanner's first passes, the
	// refresher's first census), then each variant's idle window; Settle
	// after each burst of refreshes.
	Warmup, Settle time.Duration
	Variants       []costsVariant
	BufferPool     string
}

// costsVariant is one providers entry the figure runs the product with,
// and the length of its idle window.
type costsVariant struct {
	// RateLimit is the entry's rate_limit_per_second (0: none). When set,
	// it is far above what the run reaches, so it never holds a call
	// back: it is there so that the limiter's and the backlog's commands
	// are counted.
	RateLimit float64
	Window    time.Duration
}

func (v costsVariant) String() string {
	if v.RateLimit <= 0 {
		return "no rate_limit_per_second"
	}
	return fmt.Sprintf("rate_limit_per_second: %g", v.RateLimit)
}

// The fleets of figure 9: the Ajio type and a type no entry names.
const (
	costsType        = "16"
	costsForeignType = "77"
	costsForeignFrom = 10_000_000
	// costsOld marks the tokens phase 2 makes due.
	costsOld = "bench-old-token"
)

// Targets of issue 21.
const (
	targetIdleRowsPerSecond = 2000
	targetCmdsPerRefresh    = 12
	targetBytesPerConn      = 100
)

// LuaProbe is what the private Redis counted for a script and a
// transaction, measured before the product started: the commands counted
// beyond those the client sent.
type LuaProbe struct {
	// An EVAL whose script makes 3 redis.call: total_commands_processed
	// and commandstats beyond the EVAL (and the bench's INFO).
	EvalTotalExtra, EvalStatsExtra int64
	// MULTI, SET, DEL, EXEC sent by a client: beyond those 4.
	MultiTotalExtra, MultiStatsExtra int64
	// Unaccounted is what two back-to-back snapshots counted beyond the
	// bench's own commands (0: the bench accounts for all of its own).
	Unaccounted int64
}

// CostsResult is figure 9.
type CostsResult struct {
	Case    costsCase
	Started time.Time
	Took    time.Duration
	MariaDB string // the private servers' versions
	Redis   string
	Indexes []string // the index statements applied (03-indexes.sql)
	Seeded  time.Duration
	// What the binaries read, from their --help.
	FullScanKnown bool
	CensusSetting string // e.g. "refresher's CENSUS_INTERVAL, default 1m"
	DBOwn         map[string]int64
	Probe         LuaProbe
	// The scanner's start and first pass, alone.
	FirstPass    dbDelta
	FirstPassLog scanLog
	Runs         []CostsRun // one per variant, in order
	PeakCalls    int        // the most marketplace calls in one wall-clock second
}

// CostsRun is the product with one providers entry: idle, then two bursts
// of refreshes, the second measured.
type CostsRun struct {
	Variant         costsVariant
	Idle            dbDelta
	IdleLog         scanLog
	IdleRedis       cmdDelta
	IdleCalls       int   // marketplace calls from the processes' start to the end of the idle window
	IdleMemoryDrift int64 // used_memory end − start of the idle window
	// CensusHolders are the processes whose log said, by the end of the
	// idle window, that they took the census lease (the census is taken
	// by its holder: a scanner every SCAN_INTERVAL, a refresher every
	// CENSUS_INTERVAL).
	CensusHolders []string
	// The first burst, unmeasured: it opens the client connections.
	WarmBurstTook  time.Duration
	WarmBurstCalls int
	Refresh        cmdDelta
	RefreshCalls   int
	RefreshTook    time.Duration // from the UPDATE to every token stored and the queues empty
	Commands       []CommandCost
	PerRefresh     float64 // total_commands_processed
	// PerRefreshClient is what clients sent: total_commands_processed less
	// the commands scripts ran (MONITOR's "lua" lines), a script's EVALSHA
	// one command.
	PerRefreshClient float64
	PerRefreshSum    float64 // commandstats summed
	MemBefore        redisStats
	MemAfter         redisStats
	Keys             []KeyChange
}

// RowsCounter is the status counter the DB figures are of (rowsCounter).
func (c CostsResult) RowsCounter() string {
	if len(c.Runs) == 0 {
		return rowsCounter(nil)
	}
	return rowsCounter(c.Runs[0].Idle.Counters)
}

// IdleRowsPerSecond is the figure: rows read per second of the first
// variant's idle window.
func (c CostsResult) IdleRowsPerSecond() float64 {
	if len(c.Runs) == 0 {
		return math.NaN()
	}
	return c.Runs[0].Idle.rate(c.RowsCounter())
}

// FullPassRows is the rows read by the scanner's start and first pass.
func (c CostsResult) FullPassRows() int64 { return c.FirstPass.Counters[c.RowsCounter()] }

// Amortized is the idle rate plus one full pass per FULL_SCAN_INTERVAL
// (false when the scanner does not read the setting: every pass is then a
// full pass, and the idle rate has them all).
func (c CostsResult) Amortized() (float64, bool) {
	if !c.FullScanKnown || c.Case.FullScanInterval <= 0 {
		return 0, false
	}
	return c.IdleRowsPerSecond() + float64(c.FullPassRows())/c.Case.FullScanInterval.Seconds(), true
}

// BytesPerConn is used_memory after the refreshes less before, the
// client connections' buffers apart (mem_clients_normal: they come and
// go with the connections and the traffic, some 20 kB a connection), per
// refreshed connection.
func (c CostsRun) BytesPerConn(due int) float64 {
	return float64(memKept(c.MemBefore, c.MemAfter)) / float64(due)
}

// memKept is the change of used_memory less that of the clients' buffers.
func memKept(before, after redisStats) int64 {
	return (after.UsedMemory - before.UsedMemory) - (after.MemClients - before.MemClients)
}

// Ran reports whether figure 9 was measured.
func (c CostsResult) Ran() bool { return len(c.Runs) > 0 }

func (r *runner) costsSection(ctx context.Context, rep *Report) error {
	res, err := r.costs(ctx, r.sz.costs)
	if err != nil {
		return err
	}
	rep.Costs = res
	amort := "-"
	if a, ok := res.Amortized(); ok {
		amort = fmt.Sprintf("%.0f", a)
	}
	// One machine-readable line for scripts and the closing note.
	line := fmt.Sprintf("BENCH-COSTS idle_db_rows_per_s=%.0f full_pass_rows=%d amortized_db_rows_per_s=%s",
		res.IdleRowsPerSecond(), res.FullPassRows(), amort)
	for _, run := range res.Runs {
		tag := "nolimit"
		if run.Variant.RateLimit > 0 {
			tag = "limit"
		}
		line += fmt.Sprintf(" redis_client_cmds_per_refresh_%s=%.2f redis_cmds_per_refresh_%s=%.2f redis_bytes_per_conn_%s=%.0f", tag, run.PerRefreshClient, tag, run.PerRefresh, tag, run.BytesPerConn(res.Case.Due))
	}
	fmt.Fprintf(r.log, "%s n=%d fleet=%d foreign=%d commit=%s\n", line, res.Case.Due, res.Case.Fleet, res.Case.Foreign, rep.Machine.Commit)
	return nil
}

// costsEnv is what a variant's run needs of figure 9's setup.
type costsEnv struct {
	c     costsCase
	db    *procs.MariaDB
	rs    *procs.Redis
	rdb   *redis.Client
	ie    *sqlx.DB
	snap  func() (redisStats, error)
	dbOwn map[string]int64
	st    *marketState
}

// costs runs figure 9 on a private mariadbd and redis-server, stopped at
// the end whatever happens.
func (r *runner) costs(ctx context.Context, c costsCase) (res CostsResult, err error) {
	res = CostsResult{Case: c, Started: time.Now().UTC()}
	// The bench's one Redis connection, its commands counted so they are
	// taken out of the figures.
	pair, err := startPrivatePair(ctx, r.env.tmp, "costs", c.BufferPool, 1, r.logf)
	if err != nil {
		return res, err
	}
	defer pair.close()
	db, rs, rdb, own := pair.db, pair.rs, pair.rdb, pair.own
	ce := &costsEnv{c: c, db: db, rs: rs, rdb: rdb}
	lua, err := startLuaMeter(rs.Addr)
	if err != nil {
		return res, fmt.Errorf("MONITOR: %w", err)
	}
	defer lua.close()
	marks := 0
	ce.snap = func() (redisStats, error) {
		marks++
		inScripts, err := lua.count(ctx, rdb, fmt.Sprint(marks))
		if err != nil {
			return redisStats{}, err
		}
		before := own.snapshot()
		info, err := rdb.Info(ctx, "stats", "commandstats", "memory", "clients", "keyspace").Result()
		if err != nil {
			return redisStats{}, err
		}
		s, err := parseRedisStats(info)
		s.At, s.Own, s.Lua = time.Now(), before, inScripts
		return s, err
	}
	if err := db.Root().GetContext(ctx, &res.MariaDB, "SELECT VERSION()"); err != nil {
		return res, err
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return res, err
	}
	res.Redis = parseInfo(info)["redis_version"]
	if res.Probe, err = probeCounting(ctx, rdb, ce.snap); err != nil {
		return res, fmt.Errorf("probe: %w", err)
	}

	if err := r.costsSeed(ctx, db, c, &res); err != nil {
		return res, err
	}
	ce.ie = sqlx.MustOpen("mysql", db.DSN("root", r.env.ieDB))
	defer ce.ie.Close()
	ce.ie.SetMaxOpenConns(1)

	// The bench's own cost of a snapshot, with nothing else running.
	s0, err := readDBStatus(ctx, db.Root())
	if err != nil {
		return res, err
	}
	s1, err := readDBStatus(ctx, db.Root())
	if err != nil {
		return res, err
	}
	ce.dbOwn = s1.since(s0, nil).Counters
	res.DBOwn = ce.dbOwn

	scanHelp, _ := exec.CommandContext(ctx, filepath.Join(r.cfg.BinDir, "scanner"), "--help").CombinedOutput()
	refHelp, _ := exec.CommandContext(ctx, filepath.Join(r.cfg.BinDir, "refresher"), "--help").CombinedOutput()
	_, res.FullScanKnown = helpDefault(string(scanHelp), "FULL_SCAN_INTERVAL")
	for _, h := range []struct{ bin, text string }{{"scanner", string(scanHelp)}, {"refresher", string(refHelp)}} {
		if d, ok := helpDefault(h.text, "CENSUS_INTERVAL"); ok {
			res.CensusSetting = fmt.Sprintf("%s's CENSUS_INTERVAL, default %s", h.bin, d)
		}
	}
	ce.st = r.market.reset(sandbox.Faults{}, 0)
	step := c.Fleet / c.Due
	for i, v := range c.Variants {
		// Each variant's bursts take ids of their own: every step-th
		// id from an offset of their own.
		offsets := [2]int{(2 * i * step) / (2 * len(c.Variants)), ((2*i + 1) * step) / (2 * len(c.Variants))}
		run, err := r.costsRun(ctx, ce, v, i == 0, &res, offsets)
		if err != nil {
			return res, fmt.Errorf("%s: %w", v, err)
		}
		res.Runs = append(res.Runs, run)
	}
	res.PeakCalls = ce.st.gate.stats().peak
	res.Took = time.Since(res.Started)
	return res, nil
}

// costsRun starts the scanner and the refresher with v's providers entry
// (the scanner alone first when first is set, to measure its start and
// first pass), measures them idle, then makes two bursts of connections
// due (ids whose remainder modulo Fleet/Due is offsets[0], then
// offsets[1]) and measures the second.
func (r *runner) costsRun(ctx context.Context, ce *costsEnv, v costsVariant, first bool, res *CostsResult, offsets [2]int) (run CostsRun, err error) {
	c, db, st := ce.c, ce.db, ce.st
	run.Variant = v
	pf, err := r.providersFile(fmt.Sprintf("costs-%g", v.RateLimit), providerEntry{Type: costsType, TTL: 30 * time.Minute, Before: 10 * time.Minute, RateLimit: v.RateLimit})
	if err != nil {
		return run, err
	}
	vars := func(user string, extra map[string]string) (map[string]string, error) {
		return productEnv(ce.db, ce.rs.Addr, user, r.env.wmsDB, r.env.ieDB, pf, extra)
	}
	calls0 := st.sb.Stats().Issued

	// The census lease of a previous variant's processes must be gone,
	// so that this variant's scanner, started first, takes it as the
	// first variant's did (it is released on SIGTERM, or expires).
	lk := lease.New(ce.rdb, task.DefaultQueue, 0).RoleKey(census.LeaseRole)
	waited := time.Now()
	for {
		n, err := ce.rdb.Exists(ctx, lk).Result()
		if err != nil {
			return run, err
		}
		if n == 0 {
			break
		}
		if time.Since(waited) > 2*lease.DefaultTTL {
			return run, fmt.Errorf("the census lease %s is still held %s after the processes stopped", lk, time.Since(waited).Round(time.Second))
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return run, err
		}
	}
	if d := time.Since(waited); d > time.Second {
		r.logf("costs: %s: waited %s for the previous census lease to go", v, d.Round(100*time.Millisecond))
	}

	sv, err := vars("scanner", map[string]string{
		"SCAN_INTERVAL":      c.ScanInterval.String(),
		"FULL_SCAN_INTERVAL": c.FullScanInterval.String(),
	})
	if err != nil {
		return run, err
	}
	f0, err := readDBStatus(ctx, db.Root())
	if err != nil {
		return run, err
	}
	scn, err := r.env.start(r.cfg.BinDir, "scanner", nil, sv)
	if err != nil {
		return run, err
	}
	defer scn.stop(time.Minute)
	scanned := func() scanLog { return parseScanLog(readFile(scn.log)) }
	if first {
		// The scanner's start and first pass, which nothing else
		// overlaps.
		deadline := time.Now().Add(5 * time.Minute)
		for scanned().Passes < 1 {
			select {
			case <-scn.Done():
				return run, fmt.Errorf("the scanner exited before its first pass: %v; %s", scn.Err(), scn.tail())
			default:
			}
			if time.Now().After(deadline) {
				return run, fmt.Errorf("no scan pass logged within 5 minutes; %s", scn.tail())
			}
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return run, err
			}
		}
		// The pass has logged; what it started in the background (the
		// census) may still read. The pass is over when the scanner's
		// reads stay still for half a second.
		var f1 dbStatus
		snaps, still := 0, 0
		for still < 3 && time.Now().Before(deadline) {
			if snaps > 0 {
				if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
					return run, err
				}
			}
			prev := f1.Users["scanner"].RowsRead
			if f1, err = readDBStatus(ctx, db.Root()); err != nil {
				return run, err
			}
			if snaps++; snaps > 1 && f1.Users["scanner"].RowsRead == prev {
				still++
			} else {
				still = 0
			}
		}
		res.FirstPass, res.FirstPassLog = f1.since(f0, scaleCounts(ce.dbOwn, snaps)), parseScanLog(readFile(scn.log))
		if res.FirstPassLog.Passes > 1 {
			return run, fmt.Errorf("the scanner's second pass began before its first one's reads stopped (SCAN_INTERVAL %s is too short for this fleet)", c.ScanInterval)
		}
		r.logf("costs: the scanner's start and first pass read %s rows (%d queries) in %.2fs (the pass: %.2fs)", count(int(res.FullPassRows())),
			res.FirstPass.Counters["Com_select"], res.FirstPass.Seconds, res.FirstPassLog.Seconds)
	}

	rv, err := vars("refresher", nil)
	if err != nil {
		return run, err
	}
	ref, err := r.env.start(r.cfg.BinDir, "refresher", nil, rv)
	if err != nil {
		return run, err
	}
	defer ref.stop(time.Minute)
	if err := ref.waitReady(ctx, time.Minute); err != nil {
		return run, err
	}
	r.logf("costs: %s: warm-up %s, then the idle window %s", v, c.Warmup, v.Window)
	if err := sleepCtx(ctx, c.Warmup); err != nil {
		return run, err
	}

	// Phase 1: idle.
	i0, err := readDBStatus(ctx, db.Root())
	if err != nil {
		return run, err
	}
	r0, err := ce.snap()
	if err != nil {
		return run, err
	}
	l0 := scanned()
	if err := sleepCtx(ctx, v.Window); err != nil {
		return run, err
	}
	i1, err := readDBStatus(ctx, db.Root())
	if err != nil {
		return run, err
	}
	r1, err := ce.snap()
	if err != nil {
		return run, err
	}
	run.Idle, run.IdleRedis, run.IdleLog = i1.since(i0, ce.dbOwn), r1.since(r0), scanned().sub(l0)
	run.IdleCalls = st.sb.Stats().Issued - calls0
	run.IdleMemoryDrift = r1.UsedMemory - r0.UsedMemory
	for _, p := range []*proc{scn, ref} {
		if l := readFile(p.log); strings.Contains(l, "took the census lease") {
			holder := p.name
			if strings.Contains(l, "lost the census lease") {
				holder += " (which also lost it)"
			}
			run.CensusHolders = append(run.CensusHolders, holder)
		}
	}
	r.logf("costs: %s: idle: %.0f rows read/s, %d scan passes, %.1f Redis commands/s", v, run.Idle.rate(rowsCounter(run.Idle.Counters)),
		run.IdleLog.Passes, float64(run.IdleRedis.Total)/run.IdleRedis.Seconds)

	// Phase 2: Due connections fall due at once, as tokens do when their
	// time comes: one UPDATE puts their expiry 5 seconds past the scans'
	// window (refresh_before, 10m), so they enter it 5 seconds later and the
	// scans between full passes find them by the expiry index. (An expiry
	// written inside the window, behind its bound, waits for the next full
	// pass: docs/how-it-works.md, "What a scan reads".) The first burst only
	// opens the connections a burst needs (a Redis client's buffers take
	// some 20 kB, which would swamp the bytes kept per connection), the
	// second is measured.
	step := c.Fleet / c.Due
	last := int64(step * c.Due)
	burst := func(offset int) (time.Duration, error) {
		calls0 := st.sb.Stats().Issued
		t0 := time.Now()
		out, err := ce.ie.ExecContext(ctx, `UPDATE ie_appinstall_connection
			SET accessToken = ?, accessTokenExpiryAt = TIMESTAMPADD(SECOND, 605, UTC_TIMESTAMP())
			WHERE id BETWEEN 1 AND ? AND id MOD ? = ?`, costsOld, last, step, offset)
		if err != nil {
			return 0, err
		}
		if n, _ := out.RowsAffected(); n != int64(c.Due) {
			return 0, fmt.Errorf("made %d connections due, want %d", n, c.Due)
		}
		if err := r.costsWait(ctx, ce.ie, ce.rdb, st, calls0, last, step, offset, c.Due, scn, ref); err != nil {
			return 0, err
		}
		took := time.Since(t0)
		return took, sleepCtx(ctx, c.Settle)
	}
	calls1 := st.sb.Stats().Issued
	if run.WarmBurstTook, err = burst(offsets[0]); err != nil {
		return run, fmt.Errorf("the first burst: %w", err)
	}
	run.WarmBurstCalls = st.sb.Stats().Issued - calls1
	r.logf("costs: %s: the first burst of %d refreshes took %s", v, c.Due, run.WarmBurstTook.Round(100*time.Millisecond))
	before, err := inventory(ctx, ce.rdb)
	if err != nil {
		return run, err
	}
	m0, err := ce.snap()
	if err != nil {
		return run, err
	}
	run.MemBefore = m0
	calls2 := st.sb.Stats().Issued
	if run.RefreshTook, err = burst(offsets[1]); err != nil {
		return run, err
	}
	m1, err := ce.snap()
	if err != nil {
		return run, err
	}
	run.MemAfter = m1
	run.RefreshCalls = st.sb.Stats().Issued - calls2
	run.Refresh = m1.since(m0)
	run.Commands, run.PerRefresh, run.PerRefreshSum = perRefresh(run.IdleRedis, run.Refresh, c.Due)
	run.PerRefreshClient = clientPerRefresh(run.IdleRedis, run.Refresh, c.Due)
	after, err := inventory(ctx, ce.rdb)
	if err != nil {
		return run, err
	}
	run.Keys = keyChanges(before, after)
	r.logf("costs: %s: %d refreshes in %s: %.2f Redis commands and %.0f bytes each", v, c.Due,
		run.RefreshTook.Round(100*time.Millisecond), run.PerRefresh, run.BytesPerConn(c.Due))
	r.logf("costs: %s: %.2f of them sent by clients", v, run.PerRefreshClient)
	// Both at once, so that neither takes the other's census lease on
	// its way out: the next variant's scanner, started first, takes it.
	stopped := make(chan error, 1)
	go func() { stopped <- ref.stop(time.Minute) }()
	return run, errors.Join(scn.stop(time.Minute), <-stopped)
}

// scaleCounts is counts times k.
func scaleCounts(counts map[string]int64, k int) map[string]int64 {
	out := make(map[string]int64, len(counts))
	for n, v := range counts {
		out[n] = v * int64(k)
	}
	return out
}

// costsSeed creates the schema and the optional indexes, the users the
// binaries connect as (so USER_STATISTICS tells their rows apart), and
// the fleets: Fleet Ajio connections whose tokens expire from 25 to 55
// minutes from now (nothing due for the run's length) and Foreign rows of
// an integration type without a providers entry, NULL expiry.
func (r *runner) costsSeed(ctx context.Context, db *procs.MariaDB, c costsCase, res *CostsResult) error {
	start := time.Now()
	wmsDB, ieDB := r.env.wmsDB, r.env.ieDB
	for _, st := range deploy.Schema(wmsDB, ieDB) {
		if _, err := db.Root().ExecContext(ctx, st); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	for _, u := range []string{"scanner", "refresher"} {
		for _, st := range []string{"CREATE USER '" + u + "'@'%'", "GRANT ALL ON *.* TO '" + u + "'@'%'"} {
			if _, err := db.Root().ExecContext(ctx, st); err != nil {
				return fmt.Errorf("%s: %w", st, err)
			}
		}
	}
	wms := sqlx.MustOpen("mysql", db.DSN("root", wmsDB))
	defer wms.Close()
	ie := sqlx.MustOpen("mysql", db.DSN("root", ieDB))
	defer ie.Close()
	base := time.Now().UTC().Add(25 * time.Minute).Truncate(time.Second)
	span := 30 * time.Minute
	f := fleet{Type: costsType, First: 1, N: c.Fleet}
	if err := seedFleet(ctx, wms, ie, f, func(id int64) *time.Time {
		t := base.Add(time.Duration(int64(span) * (id - f.First) / int64(f.N)))
		return &t
	}); err != nil {
		return err
	}
	if _, err := ie.ExecContext(ctx, "UPDATE ie_appinstall_connection SET accessToken = 'bench-fresh-token' WHERE id BETWEEN ? AND ?", f.First, f.last()); err != nil {
		return err
	}
	if err := seedFleet(ctx, wms, ie, fleet{Type: costsForeignType, First: costsForeignFrom, N: c.Foreign},
		func(int64) *time.Time { return nil }); err != nil {
		return err
	}
	res.Indexes = deploy.Indexes(wmsDB, ieDB)
	for _, st := range res.Indexes {
		if _, err := db.Root().ExecContext(ctx, st); err != nil {
			return fmt.Errorf("indexes: %w", err)
		}
	}
	for _, t := range []string{wmsDB + ".channels", ieDB + ".ie_appinstall_connection"} {
		if _, err := db.Root().ExecContext(ctx, "ANALYZE TABLE "+t); err != nil {
			return err
		}
	}
	res.Seeded = time.Since(start)
	r.logf("costs: seeded %s + %s connections in %s", count(c.Fleet), count(c.Foreign), res.Seeded.Round(100*time.Millisecond))
	return nil
}

// costsWait waits until the marketplace issued due tokens, every due row
// holds a new one, and the queues hold nothing pending, active or to
// retry.
func (r *runner) costsWait(ctx context.Context, ie *sqlx.DB, rdb *redis.Client, st *marketState, calls0 int, last int64, step, offset, due int, procs ...*proc) error {
	deadline := time.Now().Add(5 * time.Minute)
	check := func(what string) error {
		for _, p := range procs {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %v; %s", p.name, p.Err(), p.tail())
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not done after 5 minutes; %s", what, procs[len(procs)-1].tail())
		}
		return sleepCtx(ctx, 100*time.Millisecond)
	}
	for st.sb.Stats().Issued-calls0 < due {
		if err := check(fmt.Sprintf("%d refreshes", due)); err != nil {
			return err
		}
	}
	for {
		var left int
		if err := ie.GetContext(ctx, &left, `SELECT COUNT(*) FROM ie_appinstall_connection
			WHERE id BETWEEN 1 AND ? AND id MOD ? = ? AND accessToken = ?`, last, step, offset, costsOld); err != nil {
			return err
		}
		if left == 0 {
			break
		}
		if err := check("storing the new tokens"); err != nil {
			return err
		}
	}
	for {
		queues, err := rdb.SMembers(ctx, "asynq:queues").Result()
		if err != nil {
			return err
		}
		pipe := rdb.Pipeline()
		var sizes []*redis.IntCmd
		for _, q := range queues {
			p := "asynq:{" + q + "}:"
			sizes = append(sizes, pipe.LLen(ctx, p+"pending"), pipe.LLen(ctx, p+"active"), pipe.ZCard(ctx, p+"retry"))
		}
		if len(sizes) > 0 {
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
		}
		var left int64
		for _, s := range sizes {
			left += s.Val()
		}
		if left == 0 {
			return nil
		}
		if err := check("emptying the queues (" + strings.Join(queues, ", ") + ")"); err != nil {
			return err
		}
	}
}

// probeCounting finds out what the private Redis counts, before the
// product starts: two back-to-back snapshots (the bench's own accounting),
// an EVAL making 3 redis.call, and a MULTI … EXEC of 2 commands.
func probeCounting(ctx context.Context, rdb *redis.Client, snap func() (redisStats, error)) (LuaProbe, error) {
	var p LuaProbe
	a, err := snap()
	if err != nil {
		return p, err
	}
	b, err := snap()
	if err != nil {
		return p, err
	}
	p.Unaccounted = b.since(a).Total
	const script = "redis.call('set', KEYS[1], '1'); redis.call('get', KEYS[1]); redis.call('del', KEYS[1]); return 1"
	if err := rdb.Eval(ctx, script, []string{"bench:probe"}).Err(); err != nil {
		return p, err
	}
	c, err := snap()
	if err != nil {
		return p, err
	}
	d := c.since(b)
	p.EvalTotalExtra, p.EvalStatsExtra = d.Total, d.sum()
	conn := rdb.Conn()
	for _, args := range [][]any{{"multi"}, {"set", "bench:probe", "1"}, {"del", "bench:probe"}, {"exec"}} {
		if err := conn.Do(ctx, args...).Err(); err != nil {
			conn.Close()
			return p, err
		}
	}
	conn.Close()
	e, err := snap()
	if err != nil {
		return p, err
	}
	d = e.since(c)
	p.MultiTotalExtra, p.MultiStatsExtra = d.Total, d.sum()
	return p, nil
}
