package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// capacityCase is figure 10: unit costs measured on N1 connections with
// one scanner and one refresher over one generation of tokens living TTL1
// (refresh_before Before1), then the model's prediction for N2
// connections, then N2 connections simulated with Replicas refreshers
// over one generation of TTL2 tokens (refresh_before Before2), on the same
// private servers.
type capacityCase struct {
	N1, N2           int
	TTL1, Before1    time.Duration
	TTL2, Before2    time.Duration
	ScanInterval     time.Duration
	FullScanInterval time.Duration
	Concurrency      int // REFRESH_CONCURRENCY
	Replicas         int // refreshers of phase 2
	Idle             time.Duration
	Lead             time.Duration // phase 1: from the seeding's start to the first connection falling due
	ProbeTasks       int
	BufferPool       string
}

func (c capacityCase) model() CapacityModel {
	return CapacityModel{Replicas: c.Replicas, ScanInterval: c.ScanInterval, FullScanInterval: c.FullScanInterval}
}

// capacityType is the Ajio integration type of figure 10; capacitySeedToken
// is the token every seeded row holds until it is refreshed.
const (
	capacityType      = "16"
	capacitySeedToken = "bench-seed-token"
)

// CapacityResult is figure 10.
type CapacityResult struct {
	Case    capacityCase
	Started time.Time
	Took    time.Duration
	MariaDB string
	Redis   string
	Indexes []string
	Unit    UnitCosts
	// Predicted is the model's prediction for phase 2, computed from
	// phase 1 before phase 2 started (PredictedAt).
	Predicted   Prediction
	PredictedAt time.Time
	Phase1      CapacityPhase
	Phase2      CapacityPhase
}

// Ran reports whether figure 10 was measured.
func (c CapacityResult) Ran() bool { return c.Phase2.Window.Seconds > 0 }

// Model is the model with phase 1's unit costs and phase 2's settings.
func (c CapacityResult) Model() CapacityModel {
	m := c.Case.model()
	m.Unit = c.Unit
	return m
}

// capSnap is one reading of every counter the figure uses.
type capSnap struct {
	At         time.Time
	Redis      redisStats
	RedisCPU   float64 // seconds, used_cpu_user + used_cpu_sys
	DB         dbStatus
	Scanner    time.Duration
	Refreshers time.Duration
	MariaDB    time.Duration
	Issued     int
}

// capDelta is what happened between two readings.
type capDelta struct {
	Seconds       float64
	RedisCommands float64 // the bench's own taken out
	RedisCPU      float64
	ScanQueries   float64 // the scanner user's statements
	ScanRows      float64
	RefreshQ      float64 // the refresher user's statements
	RefreshRows   float64
	ScannerCPU    float64
	RefresherCPU  float64
	MariaDBCPU    float64
	Refreshes     float64 // tokens the marketplace issued
}

func statements(u userStat) int64 { return u.Selects + u.Updates + u.Other }

func (b capSnap) since(a capSnap) capDelta {
	rd := b.Redis.since(a.Redis)
	sc := b.DB.Users["scanner"].sub(a.DB.Users["scanner"])
	rf := b.DB.Users["refresher"].sub(a.DB.Users["refresher"])
	return capDelta{
		Seconds:       b.At.Sub(a.At).Seconds(),
		RedisCommands: float64(rd.Total),
		RedisCPU:      b.RedisCPU - a.RedisCPU,
		ScanQueries:   float64(statements(sc)),
		ScanRows:      float64(sc.RowsRead),
		RefreshQ:      float64(statements(rf)),
		RefreshRows:   float64(rf.RowsRead),
		ScannerCPU:    (b.Scanner - a.Scanner).Seconds(),
		RefresherCPU:  (b.Refreshers - a.Refreshers).Seconds(),
		MariaDBCPU:    (b.MariaDB - a.MariaDB).Seconds(),
		Refreshes:     float64(b.Issued - a.Issued),
	}
}

// perSecond is d's rates.
func (d capDelta) perSecond() Background {
	s := d.Seconds
	if s <= 0 {
		return Background{}
	}
	return Background{RedisCommands: d.RedisCommands / s, RedisCPU: d.RedisCPU / s, MariaDBCPU: d.MariaDBCPU / s,
		ScanQueries: d.ScanQueries / s, ScanRows: d.ScanRows / s, ScannerCPU: d.ScannerCPU / s,
		RefreshQueries: d.RefreshQ / s, RefreshRows: d.RefreshRows / s, RefresherCPU: d.RefresherCPU / s}
}

// CapacityPhase is one phase's run.
type CapacityPhase struct {
	Connections   int
	TTL, Before   time.Duration
	Replicas      int
	Seeded        time.Duration // seeding, indexes and ANALYZE
	FirstPass     capDelta      // the scanner's start and first pass, alone
	Idle          capDelta      // nothing due, the processes running
	Window        capDelta      // one generation
	Tail          time.Duration // after the window, until every seeded token was renewed
	Renewed       int           // seeded tokens renewed by the end of the tail
	LapsedMax     int           // most rows seen expired and not renewed at one sample during the window and the tail
	LapsedEnd     int           // rows expired and not renewed at the end
	Samples       int           // lapse samples
	PeakPending   int64         // LLEN of the queue's pending list, sampled
	PeakMemory    int64         // used_memory, sampled
	PeakMemKept   int64         // used_memory − mem_clients_normal, sampled
	BaseMemKept   int64         // the same at the window's start
	EndMemKept    int64         // the same once the queue was empty after the window
	FullPasses    int           // full passes seen in the window (the scanner read more than half the fleet in a second)
	CensusHolders []string
	// Phase 1's probe of a pending task's bytes: the processes stopped,
	// `scanner --once` enqueued ProbeEnqueued tasks, used_memory less the
	// clients' buffers grew by ProbeBytes.
	ProbeEnqueued int64
	ProbeBytes    int64
	PeakCalls     int // the marketplace's busiest second

	fullSeen int // full passes the sampler saw so far
}

// Rate is the phase's measured rates over its window, less nothing.
func (p CapacityPhase) Rate() Background { return p.Window.perSecond() }

// capEnv is figure 10's private servers and the bench's connections.
type capEnv struct {
	c     capacityCase
	db    *procs.MariaDB
	rs    *procs.Redis
	rdb   *redis.Client
	ie    *sqlx.DB
	st    *marketState
	procs struct {
		mu         sync.Mutex
		scanner    *proc
		refreshers []*proc
	}
}

func (ce *capEnv) snap(ctx context.Context, own *cmdCounter) (capSnap, error) {
	s := capSnap{}
	before := own.snapshot()
	info, err := ce.rdb.Info(ctx, "stats", "memory", "clients", "cpu", "keyspace").Result()
	if err != nil {
		return s, err
	}
	if s.Redis, err = parseRedisStats(info); err != nil {
		return s, err
	}
	s.Redis.Own = before
	kv := parseInfo(info)
	u, _ := strconv.ParseFloat(kv["used_cpu_user"], 64)
	sy, _ := strconv.ParseFloat(kv["used_cpu_sys"], 64)
	s.RedisCPU = u + sy
	if s.DB, err = readDBStatus(ctx, ce.db.Root()); err != nil {
		return s, err
	}
	ce.procs.mu.Lock()
	if p := ce.procs.scanner; p != nil {
		s.Scanner = procCPU(p.Pid())
	}
	for _, p := range ce.procs.refreshers {
		s.Refreshers += procCPU(p.Pid())
	}
	ce.procs.mu.Unlock()
	s.MariaDB = procCPU(ce.db.Pid())
	s.Issued = ce.st.sb.Stats().Issued
	s.At = time.Now()
	s.Redis.At = s.At
	return s, nil
}

func (r *runner) capacitySection(ctx context.Context, rep *Report) error {
	res, err := r.capacity(ctx, r.sz.capacity)
	rep.Capacity = res
	if err != nil {
		return err
	}
	// The whole result, so that the report can be rendered again.
	if js, err := json.Marshal(res); err == nil {
		fmt.Fprintf(r.log, "BENCH-CAPACITY-JSON %s\n", js)
	}
	p, m := res.Predicted, res.Phase2.Rate()
	fmt.Fprintf(r.log, "BENCH-CAPACITY n=%d refreshes_per_s=%.1f/%.1f redis_cmds_per_s=%.0f/%.0f redis_cores=%.3f/%.3f refresher_cores=%.3f/%.3f db_rows_per_s=%.0f/%.0f lapses=%d peak_pending=%d commit=%s\n",
		res.Case.N2, p.Refreshes, res.Phase2.Window.Refreshes/res.Phase2.Window.Seconds, p.RedisCommands, m.RedisCommands,
		p.RedisCores, m.RedisCPU, p.RefresherCores, m.RefresherCPU, p.Rows(), m.ScanRows+m.RefreshRows,
		res.Phase2.LapsedMax, res.Phase2.PeakPending, rep.Machine.Commit)
	return nil
}

// capacity runs figure 10 on a private mariadbd and redis-server.
func (r *runner) capacity(ctx context.Context, c capacityCase) (res CapacityResult, err error) {
	res = CapacityResult{Case: c, Started: time.Now().UTC()}
	defer func() { res.Took = time.Since(res.Started) }()
	pair, err := startPrivatePair(ctx, r.env.tmp, "capacity", c.BufferPool, 2, r.logf)
	if err != nil {
		return res, err
	}
	defer pair.close()
	db, rs, rdb, own := pair.db, pair.rs, pair.rdb, pair.own
	ce := &capEnv{c: c, db: db, rs: rs, rdb: rdb}
	if err := db.Root().GetContext(ctx, &res.MariaDB, "SELECT VERSION()"); err != nil {
		return res, err
	}
	info, err := rdb.Info(ctx, "server").Result()
	if err != nil {
		return res, err
	}
	res.Redis = parseInfo(info)["redis_version"]
	for _, u := range []string{"scanner", "refresher"} {
		for _, st := range []string{"CREATE USER '" + u + "'@'%'", "GRANT ALL ON *.* TO '" + u + "'@'%'"} {
			if _, err := db.Root().ExecContext(ctx, st); err != nil {
				return res, fmt.Errorf("%s: %w", st, err)
			}
		}
	}
	ce.ie = sqlx.MustOpen("mysql", db.DSN("root", r.env.ieDB))
	defer ce.ie.Close()
	ce.ie.SetMaxOpenConns(2)
	res.Indexes = deploy.Indexes(r.env.wmsDB, r.env.ieDB)

	// Phase 1: the unit costs.
	r.logf("capacity: phase 1: %s connections, token_ttl %s, refresh_before %s, 1 refresher", count(c.N1), c.TTL1, c.Before1)
	if res.Phase1, err = r.capacityPhase(ctx, ce, own, c.N1, c.TTL1, c.Before1, 1, c.Lead, true); err != nil {
		return res, fmt.Errorf("phase 1: %w", err)
	}
	res.Unit = unitCosts(res.Phase1)
	res.Predicted = res.Model().Predict(c.N2, c.TTL2, c.Before2)
	res.PredictedAt = time.Now().UTC()
	r.logf("capacity: unit costs: %.2f Redis commands, %.1f µs Redis CPU, %.1f µs refresher CPU, %.2f refresher queries, %.0f bytes a pending task",
		res.Unit.RedisCommands, res.Unit.RedisCPU*1e6, res.Unit.RefresherCPU*1e6, res.Unit.RefreshQueries, res.Unit.BytesPerTask)
	r.logf("capacity: predicted for %s connections: %.0f refreshes/s, %.0f Redis commands/s, %.3f Redis cores, %.3f refresher cores",
		count(c.N2), res.Predicted.Refreshes, res.Predicted.RedisCommands, res.Predicted.RedisCores, res.Predicted.RefresherCores)

	// Phase 2: the simulation. Its lead is phase 1's seeding and first
	// pass scaled to N2 and by 1.5, plus the idle window and 5 seconds.
	scale := float64(c.N2) / float64(c.N1)
	setup := res.Phase1.Seeded + time.Duration(res.Phase1.FirstPass.Seconds*float64(time.Second))
	lead := max(c.Lead, time.Duration(1.5*scale*float64(setup))+c.Idle+5*time.Second)
	r.logf("capacity: phase 2: %s connections, token_ttl %s, refresh_before %s, %d refreshers; the first falls due %s after the seeding starts",
		count(c.N2), c.TTL2, c.Before2, c.Replicas, lead.Round(time.Second))
	if res.Phase2, err = r.capacityPhase(ctx, ce, own, c.N2, c.TTL2, c.Before2, c.Replicas, lead, false); err != nil {
		return res, fmt.Errorf("phase 2: %w", err)
	}
	return res, nil
}

// unitCosts divides phase 1's window, its idle background subtracted, by
// its refreshes.
func unitCosts(p CapacityPhase) UnitCosts {
	w, bg := p.Window, p.Idle.perSecond()
	n := w.Refreshes
	per := func(total, idleRate float64) float64 {
		if n <= 0 {
			return math.NaN()
		}
		return (total - idleRate*w.Seconds) / n
	}
	conns := float64(p.Connections)
	u := UnitCosts{
		RedisCommands:   per(w.RedisCommands, bg.RedisCommands),
		RedisCPU:        per(w.RedisCPU, bg.RedisCPU),
		ScanQueries:     per(w.ScanQueries, bg.ScanQueries),
		ScanRows:        per(w.ScanRows, bg.ScanRows),
		RefreshQueries:  per(w.RefreshQ, bg.RefreshQueries),
		RefreshRows:     per(w.RefreshRows, bg.RefreshRows),
		RefresherCPU:    per(w.RefresherCPU, bg.RefresherCPU),
		ScannerCPU:      per(w.ScannerCPU, bg.ScannerCPU),
		MariaDBCPU:      per(w.MariaDBCPU, bg.MariaDBCPU),
		FullPassQueries: p.FirstPass.ScanQueries / conns,
		FullPassRows:    p.FirstPass.ScanRows / conns,
		FullPassCPU:     p.FirstPass.ScannerCPU / conns,
		Background:      bg,
	}
	if p.ProbeEnqueued > 0 {
		u.BytesPerTask = float64(p.ProbeBytes) / float64(p.ProbeEnqueued)
	}
	if p.Replicas > 1 {
		k := float64(p.Replicas)
		u.Background.RefreshQueries /= k
		u.Background.RefreshRows /= k
		u.Background.RefresherCPU /= k
	}
	return u
}

// capacitySeed recreates the schema and inserts n active Ajio connections
// whose expiries are spread evenly over [due+before, due+ttl], so that they
// fall due at a steady rate from due on; then the optional indexes, as
// production adds them to a filled table.
func (r *runner) capacitySeed(ctx context.Context, db *procs.MariaDB, n int, due time.Time, ttl, before time.Duration) error {
	wmsDB, ieDB := r.env.wmsDB, r.env.ieDB
	for _, d := range []string{wmsDB, ieDB} {
		if _, err := db.Root().ExecContext(ctx, "DROP DATABASE IF EXISTS "+d); err != nil {
			return err
		}
	}
	for _, st := range deploy.Schema(wmsDB, ieDB) {
		if _, err := db.Root().ExecContext(ctx, st); err != nil {
			return fmt.Errorf("schema: %w", err)
		}
	}
	wms := sqlx.MustOpen("mysql", db.DSN("root", wmsDB))
	defer wms.Close()
	ie := sqlx.MustOpen("mysql", db.DSN("root", ieDB))
	defer ie.Close()
	span := ttl - before
	const batch = 5000
	for start := 1; start <= n; start += batch {
		var ch, conn strings.Builder
		ch.WriteString("INSERT INTO channels (connectionId, integrationType, status) VALUES ")
		conn.WriteString("INSERT INTO ie_appinstall_connection (id, inputFields, accessToken, accessTokenExpiryAt, isActive) VALUES ")
		for id := start; id < start+batch && id <= n; id++ {
			if id > start {
				ch.WriteByte(',')
				conn.WriteByte(',')
			}
			fmt.Fprintf(&ch, "(%d,'%s','0')", id, capacityType)
			exp := due.Add(before + time.Duration(int64(span)*int64(id-1)/int64(n)))
			u := username(int64(id))
			fmt.Fprintf(&conn, `(%d,'{"username":"%s","password":"%s"}','%s','%s','active')`, id, u, sandbox.Password(u),
				capacitySeedToken, exp.UTC().Format(time.DateTime))
		}
		if _, err := wms.ExecContext(ctx, ch.String()); err != nil {
			return fmt.Errorf("seed channels: %w", err)
		}
		if _, err := ie.ExecContext(ctx, conn.String()); err != nil {
			return fmt.Errorf("seed connections: %w", err)
		}
	}
	for _, st := range deploy.Indexes(wmsDB, ieDB) {
		if _, err := db.Root().ExecContext(ctx, st); err != nil {
			return fmt.Errorf("indexes: %w", err)
		}
	}
	for _, t := range []string{wmsDB + ".channels", ieDB + ".ie_appinstall_connection"} {
		if _, err := db.Root().ExecContext(ctx, "ANALYZE TABLE "+t); err != nil {
			return err
		}
	}
	return nil
}

// capacityPhase seeds n connections falling due from lead after the
// seeding starts, starts the scanner (its first pass measured alone), then
// the refreshers, measures them idle until the first connection falls due,
// then over one generation, then waits until every seeded token was
// renewed. With probe, it then measures a pending task's bytes.
func (r *runner) capacityPhase(ctx context.Context, ce *capEnv, own *cmdCounter, n int, ttl, before time.Duration, replicas int, lead time.Duration, probe bool) (ph CapacityPhase, err error) {
	c := ce.c
	ph.Connections, ph.TTL, ph.Before, ph.Replicas = n, ttl, EffectiveBefore(ttl, before), replicas
	t0 := time.Now()
	due := t0.Add(lead).Truncate(time.Second).Add(time.Second)
	if err := r.capacitySeed(ctx, ce.db, n, due, ttl, ph.Before); err != nil {
		return ph, err
	}
	ph.Seeded = time.Since(t0)
	r.logf("capacity: seeded %s connections in %s; the first falls due at %s", count(n), ph.Seeded.Round(100*time.Millisecond), due.Format("15:04:05"))
	if err := ce.rdb.FlushAll(ctx).Err(); err != nil {
		return ph, err
	}
	ce.st = r.market.reset(sandbox.Faults{}, 0)
	pf, err := r.providersFile(fmt.Sprintf("capacity-%d", n), providerEntry{Type: capacityType, TTL: ttl, Before: before})
	if err != nil {
		return ph, err
	}
	vars := func(user string, extra map[string]string) (map[string]string, error) {
		return productEnv(ce.db, ce.rs.Addr, user, r.env.wmsDB, r.env.ieDB, pf, extra)
	}
	sv, err := vars("scanner", map[string]string{"SCAN_INTERVAL": c.ScanInterval.String(), "FULL_SCAN_INTERVAL": c.FullScanInterval.String()})
	if err != nil {
		return ph, err
	}
	var procs []*proc
	stopAll := func() error {
		var wg sync.WaitGroup
		errs := make([]error, len(procs))
		for i, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = p.stop(time.Minute) }()
		}
		wg.Wait()
		procs = nil
		ce.procs.mu.Lock()
		ce.procs.scanner, ce.procs.refreshers = nil, nil
		ce.procs.mu.Unlock()
		return errors.Join(errs...)
	}
	defer func() {
		if serr := stopAll(); err == nil {
			err = serr
		}
	}()

	f0, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	scn, err := r.env.start(r.cfg.BinDir, "scanner", nil, sv)
	if err != nil {
		return ph, err
	}
	procs = append(procs, scn)
	ce.procs.mu.Lock()
	ce.procs.scanner = scn
	ce.procs.mu.Unlock()
	alive := func() error {
		for _, p := range procs {
			select {
			case <-p.Done():
				return fmt.Errorf("%s exited: %v; %s", p.name, p.Err(), p.tail())
			default:
			}
		}
		return nil
	}
	// The scanner's start and first pass: until its "scanned" line, then
	// until its reads stay still for half a second.
	deadline := time.Now().Add(5 * time.Minute)
	for parseScanLog(readFile(scn.log)).Passes < 1 {
		if err := alive(); err != nil {
			return ph, err
		}
		if time.Now().After(deadline) {
			return ph, fmt.Errorf("no scan pass logged within 5 minutes; %s", scn.tail())
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return ph, err
		}
	}
	var f1 capSnap
	for still, snaps := 0, 0; still < 3 && time.Now().Before(deadline); snaps++ {
		if snaps > 0 {
			if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
				return ph, err
			}
		}
		prev := f1.DB.Users["scanner"].RowsRead
		if f1, err = ce.snap(ctx, own); err != nil {
			return ph, err
		}
		if snaps > 0 && f1.DB.Users["scanner"].RowsRead == prev {
			still++
		} else {
			still = 0
		}
	}
	ph.FirstPass = f1.since(f0)
	r.logf("capacity: the scanner's start and first pass read %s rows in %d statements, %.2f s CPU", count(int(ph.FirstPass.ScanRows)),
		int(ph.FirstPass.ScanQueries), ph.FirstPass.ScannerCPU)

	for i := 0; i < replicas; i++ {
		rv, err := vars("refresher", map[string]string{"REFRESH_CONCURRENCY": strconv.Itoa(c.Concurrency)})
		if err != nil {
			return ph, err
		}
		ref, err := r.env.start(r.cfg.BinDir, "refresher", nil, rv)
		if err != nil {
			return ph, err
		}
		procs = append(procs, ref)
		ce.procs.mu.Lock()
		ce.procs.refreshers = append(ce.procs.refreshers, ref)
		ce.procs.mu.Unlock()
		if err := ref.waitReady(ctx, time.Minute); err != nil {
			return ph, err
		}
	}
	// Idle: until the first connection falls due.
	idleFrom := due.Add(-c.Idle)
	if wait := time.Until(idleFrom); wait > 0 {
		if err := sleepCtx(ctx, wait); err != nil {
			return ph, err
		}
	}
	if time.Until(due) < min(c.Idle/2, 3*time.Second) {
		return ph, fmt.Errorf("the processes were ready %s before the first connection fell due, too late for the idle window (the lead %s is too short)",
			time.Until(due).Round(100*time.Millisecond), lead)
	}
	i0, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	if err := sleepCtx(ctx, time.Until(due)); err != nil {
		return ph, err
	}
	w0, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	ph.Idle = w0.since(i0)
	ph.BaseMemKept = w0.Redis.UsedMemory - w0.Redis.MemClients
	r.logf("capacity: idle over %.1fs: %.1f Redis commands/s, %.4f Redis cores, %.4f refresher cores", ph.Idle.Seconds,
		ph.Idle.perSecond().RedisCommands, ph.Idle.perSecond().RedisCPU, ph.Idle.perSecond().RefresherCPU)

	// The window: one generation, sampled.
	gen := ttl - ph.Before
	end := due.Add(gen)
	sctx, stopSampling := context.WithCancel(ctx)
	var (
		sampleErr error
		swg       sync.WaitGroup
	)
	swg.Add(1)
	go func() {
		defer swg.Done()
		sampleErr = r.capacitySample(sctx, ce, n, &ph)
	}()
	defer func() {
		stopSampling()
		swg.Wait()
	}()
	logged := 0
	for time.Now().Before(end) {
		if err := alive(); err != nil {
			return ph, err
		}
		if err := sleepCtx(ctx, min(time.Second, time.Until(end)+time.Millisecond)); err != nil {
			return ph, err
		}
		if m := int(time.Since(due) / time.Minute); m > logged {
			logged = m
			r.logf("capacity: %s of %s: %d tokens issued, peak pending %d", time.Since(due).Round(time.Second), gen,
				ce.st.sb.Stats().Issued-w0.Issued, ph.peakPending())
		}
	}
	w1, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	ph.Window = w1.since(w0)
	sampleMu.Lock()
	ph.FullPasses = ph.fullSeen
	sampleMu.Unlock()
	r.logf("capacity: the generation (%s): %.0f refreshes, %.1f/s", gen, ph.Window.Refreshes, ph.Window.Refreshes/ph.Window.Seconds)

	// The tail: until every seeded token was renewed and the queue is
	// empty.
	tailEnd := time.Now().Add(3*c.ScanInterval + time.Minute)
	for {
		if err := alive(); err != nil {
			return ph, err
		}
		var left int
		if err := ce.ie.GetContext(ctx, &left, "SELECT COUNT(*) FROM ie_appinstall_connection WHERE accessToken = ?", capacitySeedToken); err != nil {
			return ph, err
		}
		pending, err := ce.rdb.LLen(ctx, "asynq:{token_refresh}:pending").Result()
		if err != nil {
			return ph, err
		}
		active, err := ce.rdb.LLen(ctx, "asynq:{token_refresh}:active").Result()
		if err != nil {
			return ph, err
		}
		ph.Renewed = n - left
		if left == 0 && pending+active == 0 {
			break
		}
		if time.Now().After(tailEnd) {
			r.logf("capacity: %d seeded tokens not renewed %s after the generation", left, time.Since(end).Round(time.Second))
			break
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return ph, err
		}
	}
	ph.Tail = time.Since(end)
	stopSampling()
	swg.Wait()
	if sampleErr != nil && !errors.Is(sampleErr, context.Canceled) {
		return ph, sampleErr
	}
	if err := ce.ie.GetContext(ctx, &ph.LapsedEnd, "SELECT COUNT(*) FROM ie_appinstall_connection WHERE accessTokenExpiryAt < UTC_TIMESTAMP()"); err != nil {
		return ph, err
	}
	e, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	ph.EndMemKept = e.Redis.UsedMemory - e.Redis.MemClients
	ph.PeakCalls = ce.st.gate.stats().peak
	for _, p := range procs {
		if l := readFile(p.log); strings.Contains(l, "took the census lease") {
			ph.CensusHolders = append(ph.CensusHolders, p.name)
		}
	}
	r.logf("capacity: all renewed %s after the generation: %d renewed, %d expired and not renewed at most at once, peak pending %d",
		ph.Tail.Round(time.Second), ph.Renewed, ph.LapsedMax, ph.PeakPending)
	if !probe {
		return ph, nil
	}

	// A pending task's bytes: the processes stopped, some connections
	// made due, `scanner --once` enqueues them.
	if err := stopAll(); err != nil {
		return ph, err
	}
	m0, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	k := min(c.ProbeTasks, n)
	if _, err := ce.ie.ExecContext(ctx, `UPDATE ie_appinstall_connection SET accessTokenExpiryAt = TIMESTAMPADD(SECOND, ?, UTC_TIMESTAMP())
		WHERE id <= ?`, int(ph.Before.Seconds()/2), k); err != nil {
		return ph, err
	}
	once, err := r.env.start(r.cfg.BinDir, "scanner", []string{"--once"}, sv)
	if err != nil {
		return ph, err
	}
	if err := once.wait(5 * time.Minute); err != nil {
		return ph, err
	}
	m1, err := ce.snap(ctx, own)
	if err != nil {
		return ph, err
	}
	if ph.ProbeEnqueued, err = ce.rdb.LLen(ctx, "asynq:{token_refresh}:pending").Result(); err != nil {
		return ph, err
	}
	ph.ProbeBytes = (m1.Redis.UsedMemory - m1.Redis.MemClients) - (m0.Redis.UsedMemory - m0.Redis.MemClients)
	r.logf("capacity: probe: %d tasks pending took %d bytes", ph.ProbeEnqueued, ph.ProbeBytes)
	if ph.ProbeEnqueued < int64(k) {
		return ph, fmt.Errorf("scanner --once left %d tasks pending, want at least %d; %s", ph.ProbeEnqueued, k, once.tail())
	}
	return ph, nil
}

// fullPassMinRows is the fewest rows the scanner reads in one second that
// the sampler takes for a full pass (besides half the fleet).
const fullPassMinRows = 50_000

// sampleMu guards the peaks capacitySample writes while the run reads
// them for its progress lines.
var sampleMu sync.Mutex

func (ph *CapacityPhase) peakPending() int64 {
	sampleMu.Lock()
	defer sampleMu.Unlock()
	return ph.PeakPending
}

// capacitySample reads, until ctx ends, the queue's pending tasks every
// 250 ms, Redis's memory and the scanner's reads every second (a second
// in which it read more than half the fleet belongs to a full pass), and
// every 5 seconds the rows expired and not renewed.
func (r *runner) capacitySample(ctx context.Context, ce *capEnv, n int, ph *CapacityPhase) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var lastRows int64 = -1
	inPass := false
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		pending, err := ce.rdb.LLen(ctx, "asynq:{token_refresh}:pending").Result()
		if err != nil {
			return err
		}
		sampleMu.Lock()
		ph.PeakPending = max(ph.PeakPending, pending)
		sampleMu.Unlock()
		if i%4 == 0 {
			info, err := ce.rdb.Info(ctx, "memory").Result()
			if err != nil {
				return err
			}
			kv := parseInfo(info)
			used, _ := strconv.ParseInt(kv["used_memory"], 10, 64)
			clients, _ := strconv.ParseInt(kv["mem_clients_normal"], 10, 64)
			var rows int64
			if err := ce.db.Root().GetContext(ctx, &rows, "SELECT ROWS_READ FROM information_schema.USER_STATISTICS WHERE USER = 'scanner'"); err != nil {
				return err
			}
			sampleMu.Lock()
			ph.PeakMemory = max(ph.PeakMemory, used)
			ph.PeakMemKept = max(ph.PeakMemKept, used-clients)
			if lastRows >= 0 {
				big := rows-lastRows > int64(max(n/2, fullPassMinRows))
				if big && !inPass {
					ph.fullSeen++
				}
				inPass = big
			}
			sampleMu.Unlock()
			lastRows = rows
		}
		if i%20 == 0 {
			var lapsed int
			if err := ce.ie.GetContext(ctx, &lapsed, "SELECT COUNT(*) FROM ie_appinstall_connection WHERE accessTokenExpiryAt < UTC_TIMESTAMP()"); err != nil {
				return err
			}
			sampleMu.Lock()
			ph.LapsedMax = max(ph.LapsedMax, lapsed)
			ph.Samples++
			sampleMu.Unlock()
		}
	}
}
