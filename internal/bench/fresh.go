package bench

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/token"
)

// freshCase is the steady load of figure 5: Conns connections whose tokens
// live TTL and are due Before their expiry, scanned every Interval, for Run.
type freshCase struct {
	Conns       int
	TTL         time.Duration
	Before      time.Duration
	Interval    time.Duration
	Run         time.Duration
	Latency     time.Duration
	Concurrency int
}

// Horizon is the measurement window's margin: a generation due later than
// the run's end − Horizon is not counted (a store may still come).
func (c freshCase) Horizon() time.Duration { return c.Interval + 5*time.Second }

// Target is the target for p99 (issue 11): 2 s from due to stored, whatever
// the SCAN_INTERVAL.
func (c freshCase) Target() time.Duration { return 2 * time.Second }

// Lead is how long before expiry a token of this case falls due
// (token.Lead: refresh_before, capped at a third of the lifetime).
func (c freshCase) Lead() time.Duration { return token.Lead(c.Before, c.TTL) }

// FreshRun is one run of figure 5.
type FreshRun struct {
	// Generations is how many token generations became due in the
	// measured window (early enough that a refresh within the horizon
	// would be seen before the run ended).
	Generations int
	// P50 and P99 of the time from due to stored; +Inf when more than
	// that share was not stored by the end of the run.
	P50, P99 time.Duration
	// AfterExpiry counts tokens stored after the token they replaced had
	// expired; Lapsed counts tokens that expired during the run and were
	// not replaced by its end.
	AfterExpiry int
	Lapsed      int
	Refreshes   int
}

// FreshResult is figure 5.
type FreshResult struct {
	Case freshCase
	Runs []FreshRun
}

const refreshLogDDL = `CREATE TABLE IF NOT EXISTS bench_refresh_log (
	id BIGINT NOT NULL, old_expiry DATETIME NULL, new_expiry DATETIME NULL, stored_at DATETIME(6) NOT NULL
) ENGINE=InnoDB`

// The trigger stamps every stored token with the database's clock as the
// row changes: the moment other services could first read it.
const refreshLogTrigger = `CREATE TRIGGER bench_refresh_log_trg AFTER UPDATE ON ie_appinstall_connection
	FOR EACH ROW INSERT INTO bench_refresh_log (id, old_expiry, new_expiry, stored_at)
	VALUES (NEW.id, OLD.accessTokenExpiryAt, NEW.accessTokenExpiryAt, UTC_TIMESTAMP(6))`

func (r *runner) freshSection(ctx context.Context, rep *Report) error {
	f := r.sz.freshFleet()
	for _, st := range []string{refreshLogDDL, refreshLogTrigger} {
		if _, err := r.env.ie.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("refresh log: %w", err)
		}
	}
	// Only this figure pays for the trigger.
	defer r.env.ie.ExecContext(context.Background(), "DROP TRIGGER IF EXISTS bench_refresh_log_trg")
	for _, c := range r.sz.fresh {
		res := FreshResult{Case: c}
		cf := fleet{Type: f.Type, First: f.First, N: c.Conns}
		for run := range r.cfg.Runs {
			fr, err := r.fresh(ctx, cf, c)
			if err != nil {
				return err
			}
			res.Runs = append(res.Runs, fr)
			r.logf("freshness (SCAN_INTERVAL %s) run %d: %d due generations, p50 %s, p99 %s, %d stored after expiry, %d lapsed",
				c.Interval, run+1, fr.Generations, fr.P50, fr.P99, fr.AfterExpiry, fr.Lapsed)
		}
		rep.Fresh = append(rep.Fresh, res)
	}
	return nil
}

func (r *runner) fresh(ctx context.Context, f fleet, c freshCase) (FreshRun, error) {
	if _, err := r.env.ie.ExecContext(ctx, "TRUNCATE TABLE bench_refresh_log"); err != nil {
		return FreshRun{}, err
	}
	// Expiries spread evenly over one lifetime, the first due a few
	// seconds from now (time for the processes to start): tokens fall due
	// at a steady rate from the start.
	const startup = time.Second
	base := time.Now().UTC().Add(startup + c.Before).Truncate(time.Second)
	span := int64(c.TTL / time.Second)
	if _, err := r.env.ie.ExecContext(ctx, `UPDATE ie_appinstall_connection
		SET accessToken = 'old', refreshToken = NULL,
		    accessTokenExpiryAt = TIMESTAMPADD(SECOND, ((id - ?) * ?) DIV ?, ?)
		WHERE id BETWEEN ? AND ?`, f.First, span, f.N, base, f.First, f.last()); err != nil {
		return FreshRun{}, err
	}
	if _, err := r.env.ie.ExecContext(ctx, "TRUNCATE TABLE bench_refresh_log"); err != nil {
		return FreshRun{}, err
	}
	initial := map[int64]time.Time{}
	rows, err := r.env.ie.QueryContext(ctx, `SELECT id, accessTokenExpiryAt FROM ie_appinstall_connection
		WHERE id BETWEEN ? AND ?`, f.First, f.last())
	if err != nil {
		return FreshRun{}, err
	}
	for rows.Next() {
		var id int64
		var exp time.Time
		if err := rows.Scan(&id, &exp); err != nil {
			rows.Close()
			return FreshRun{}, err
		}
		initial[id] = exp
	}
	rows.Close()

	q := r.env.newQueue("f")
	defer r.env.dropQueue(q)
	pf, err := r.providersFile("fresh", providerEntry{Type: f.Type, TTL: c.TTL, Before: c.Before})
	if err != nil {
		return FreshRun{}, err
	}
	r.market.reset(sandbox.Faults{Latency: c.Latency}, 0)
	ref, err := r.startRefresher(ctx, q, pf, c.Concurrency, nil)
	if err != nil {
		return FreshRun{}, err
	}
	defer ref.stop(time.Minute)
	addr, err := procs.FreeAddr()
	if err != nil {
		return FreshRun{}, err
	}
	scn, err := r.env.start(r.cfg.BinDir, "scanner", nil, r.vars(q, pf, map[string]string{
		"SCAN_INTERVAL": c.Interval.String(),
		"HTTP_ADDR":     addr,
	}))
	if err != nil {
		return FreshRun{}, err
	}
	defer scn.stop(time.Minute)
	if err := scn.waitReady(ctx, 30*time.Second); err != nil {
		return FreshRun{}, err
	}
	t0 := time.Now()
	if err := sleepCtx(ctx, c.Run); err != nil {
		return FreshRun{}, err
	}
	end := time.Now()
	if err := scn.stop(time.Minute); err != nil {
		return FreshRun{}, err
	}
	if err := ref.stop(time.Minute); err != nil {
		return FreshRun{}, err
	}

	type stored struct {
		id       int64
		old, new sql.NullTime
		at       time.Time
	}
	var log []stored
	lrows, err := r.env.ie.QueryContext(ctx, `SELECT id, old_expiry, new_expiry, stored_at FROM bench_refresh_log
		WHERE stored_at <= ? ORDER BY stored_at`, end.UTC())
	if err != nil {
		return FreshRun{}, err
	}
	for lrows.Next() {
		var s stored
		if err := lrows.Scan(&s.id, &s.old, &s.new, &s.at); err != nil {
			lrows.Close()
			return FreshRun{}, err
		}
		log = append(log, s)
	}
	lrows.Close()
	return freshness(initial, func(yield func(id int64, old, new time.Time, at time.Time) bool) {
		for _, s := range log {
			if !s.old.Valid || !s.new.Valid {
				continue
			}
			if !yield(s.id, s.old.Time, s.new.Time, s.at) {
				return
			}
		}
	}, c, t0, end), nil
}

// freshness computes a run's figures from the initial expiries and the
// stores in the order they happened. A generation is one stored expiry;
// it is due at expiry − Lead and ends when a store replaces it.
func freshness(initial map[int64]time.Time, stores func(func(id int64, old, new, at time.Time) bool), c freshCase, t0, end time.Time) FreshRun {
	type gen struct {
		expiry time.Time
		stored time.Time // zero: not replaced
	}
	gens := map[int64][]*gen{}
	cur := map[int64]*gen{}
	for id, exp := range initial {
		g := &gen{expiry: exp}
		gens[id] = append(gens[id], g)
		cur[id] = g
	}
	var fr FreshRun
	stores(func(id int64, old, new, at time.Time) bool {
		g := cur[id]
		if g == nil || !g.expiry.Equal(old) || !g.stored.IsZero() {
			return true // not a token store of this figure's fleet
		}
		g.stored = at
		fr.Refreshes++
		if at.After(old) {
			fr.AfterExpiry++
		}
		n := &gen{expiry: new}
		gens[id] = append(gens[id], n)
		cur[id] = n
		return true
	})
	windowEnd := end.Add(-c.Horizon())
	var lat []float64
	for _, gs := range gens {
		for _, g := range gs {
			if g.stored.IsZero() && g.expiry.Before(end) {
				fr.Lapsed++
			}
			due := g.expiry.Add(-c.Lead())
			if due.Before(t0) || due.After(windowEnd) {
				continue
			}
			d := math.Inf(1)
			if !g.stored.IsZero() {
				d = max(0, g.stored.Sub(due).Seconds())
			}
			lat = append(lat, d)
		}
	}
	sort.Float64s(lat)
	fr.Generations = len(lat)
	fr.P50 = seconds(percentile(lat, 0.50))
	fr.P99 = seconds(percentile(lat, 0.99))
	return fr
}

// seconds turns a float of seconds into a Duration; +Inf stays the largest
// Duration, which the report prints as "not stored".
func seconds(s float64) time.Duration {
	if math.IsNaN(s) {
		return 0
	}
	if math.IsInf(s, 1) || s > float64(math.MaxInt64/int64(time.Second)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}
