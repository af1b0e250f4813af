package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/eshopbox/token-refresher/internal/ratelimit"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
)

// overloadCase is figure 8: more due work than a marketplace's rate limit
// serves at once. Urgent of Conns tokens expire evenly within [UrgentFrom,
// UrgentTo] of the start, the rest within [LaterFrom, LaterTo]; expiries are
// dealt to the ids at random, and the tasks are queued in id order (the
// order a scan finds them in, or retries come back in).
type overloadCase struct {
	Conns, Urgent        int
	UrgentFrom, UrgentTo time.Duration
	LaterFrom, LaterTo   time.Duration
	Concurrency          int
	Rates                []float64
}

// OverloadRun is one run of one order at one rate.
type OverloadRun struct {
	Lapses     int           // urgent tokens refreshed after they expired (or not at all)
	LeastSlack time.Duration // the least lifetime an urgent token had left when refreshed
	Spearman   float64       // refresh order against expiry order, all connections
	Seconds    float64       // until every connection was refreshed
	Peak       int           // most calls in one wall-clock second
}

// OverloadRow is one rate: the product (earliest expiry first) beside the
// queue's own order (first in, first out) at the same limit.
type OverloadRow struct {
	Rate    float64
	Product []OverloadRun
	FIFO    []OverloadRun
}

// OverloadResult is figure 8.
type OverloadResult struct {
	Case overloadCase
	Rows []OverloadRow
}

func (s sizes) overloadFleet() fleet {
	return fleet{Type: "22", First: 120_000_000, N: s.overload.Conns}
}

func (r *runner) overloadSection(ctx context.Context, rep *Report) error {
	c := r.sz.overload
	f := r.sz.overloadFleet()
	if err := r.env.seed(ctx, f, func(int64) *time.Time { return &stale }); err != nil {
		return err
	}
	res := OverloadResult{Case: c}
	for _, rate := range c.Rates {
		row := OverloadRow{Rate: rate}
		pf, err := r.providersFile(fmt.Sprintf("overload-%g", rate),
			providerEntry{Type: f.Type, TTL: 30 * time.Minute, Before: c.LaterTo + time.Minute, RateLimit: rate})
		if err != nil {
			return err
		}
		for run := range r.cfg.Runs {
			fifo, err := r.overloadFIFO(ctx, f, c, rate)
			if err != nil {
				return err
			}
			row.FIFO = append(row.FIFO, fifo)
			prod, err := r.overloadProduct(ctx, f, c, rate, pf)
			if err != nil {
				return err
			}
			row.Product = append(row.Product, prod)
			r.logf("overload at %g/s, run %d: first in first out %d urgent lapses (least slack %s, rank correlation %.3f); product %d (%s, %.3f)",
				rate, run+1, fifo.Lapses, fifo.LeastSlack.Round(100*time.Millisecond), fifo.Spearman,
				prod.Lapses, prod.LeastSlack.Round(100*time.Millisecond), prod.Spearman)
		}
		res.Rows = append(res.Rows, row)
	}
	rep.Overload = res
	return nil
}

// overloadExpiries deals the case's expiries, from now, to f's ids at
// random, and reports which are urgent.
func overloadExpiries(f fleet, c overloadCase, now time.Time) (map[int64]time.Time, map[int64]bool) {
	ids := make([]int64, f.N)
	for i := range ids {
		ids[i] = f.First + int64(i)
	}
	rand.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	spread := func(i, n int, from, to time.Duration) time.Time {
		if n <= 1 {
			return now.Add(from)
		}
		return now.Add(from + time.Duration(float64(to-from)*float64(i)/float64(n-1)))
	}
	exp, urgent := make(map[int64]time.Time, f.N), make(map[int64]bool, c.Urgent)
	for i, id := range ids {
		if i < c.Urgent {
			exp[id], urgent[id] = spread(i, c.Urgent, c.UrgentFrom, c.UrgentTo).Truncate(time.Second), true
		} else {
			exp[id] = spread(i-c.Urgent, f.N-c.Urgent, c.LaterFrom, c.LaterTo).Truncate(time.Second)
		}
	}
	return exp, urgent
}

// overloadProduct runs bin/refresher over the backlog, queued in id order.
func (r *runner) overloadProduct(ctx context.Context, f fleet, c overloadCase, rate float64, providers string) (OverloadRun, error) {
	q := r.env.newQueue("o")
	defer r.env.dropQueue(q)
	st := r.market.reset(sandbox.Faults{}, 0)
	p, err := r.startRefresher(ctx, q, providers, c.Concurrency, nil)
	if err != nil {
		return OverloadRun{}, err
	}
	defer p.stop(time.Minute)
	if err := r.env.inspector.PauseQueue(q); err != nil {
		return OverloadRun{}, err
	}
	start := time.Now()
	exp, urgent := overloadExpiries(f, c, start)
	tx, err := r.env.ie.BeginTxx(ctx, nil)
	if err != nil {
		return OverloadRun{}, err
	}
	for id := f.First; id <= f.last(); id++ {
		if _, err := tx.ExecContext(ctx, `UPDATE ie_appinstall_connection SET accessToken = 'old', refreshToken = NULL, accessTokenExpiryAt = ? WHERE id = ?`,
			exp[id].UTC().Format(time.DateTime), id); err != nil {
			tx.Rollback()
			return OverloadRun{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return OverloadRun{}, err
	}
	queue := task.NewQueue(r.env.rdb, q, taskTimeout)
	for id := f.First; id <= f.last(); id++ {
		e := exp[id]
		if _, err := queue.Enqueue(ctx, task.Payload{ConnectionID: id, IntegrationType: f.Type, DueExpiry: &e}); err != nil {
			return OverloadRun{}, err
		}
	}
	took, _, err := r.drain(ctx, q, f.N, newCPUMeter(0), 10*time.Minute)
	if err != nil {
		return OverloadRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	var tokens []string
	if err := r.env.ie.SelectContext(ctx, &tokens, `SELECT accessToken FROM ie_appinstall_connection WHERE id BETWEEN ? AND ? AND accessToken <> 'old'`,
		f.First, f.last()); err != nil {
		return OverloadRun{}, err
	}
	g := st.sb.GenerationsOf(tokens)
	served := make(map[int64]time.Time, f.N)
	for id := f.First; id <= f.last(); id++ {
		if gen, ok := g.Users[username(id)]; ok {
			served[id] = gen.LastAt
		}
	}
	run := overloadScore(exp, urgent, served)
	run.Seconds, run.Peak = took.Seconds(), st.sb.Stats().PeakPerSecond
	return run, nil
}

// overloadFIFO is the same backlog served in the order it was queued (id
// order), as a FIFO queue serves it, at the same shared rate limit
// (internal/ratelimit, its headroom included) and with as many workers:
// the bench calls the sandbox itself, so the order is the only difference.
func (r *runner) overloadFIFO(ctx context.Context, f fleet, c overloadCase, rate float64) (OverloadRun, error) {
	st := r.market.reset(sandbox.Faults{}, 0)
	key := ratelimit.Key(r.env.newQueue("of"), f.Type)
	defer r.env.rdb.Del(context.Background(), "rate:"+key)
	lim := ratelimit.New(r.env.rdb, key, rate)
	start := time.Now()
	exp, urgent := overloadExpiries(f, c, start)
	ids := make(chan int64, f.N)
	for id := f.First; id <= f.last(); id++ {
		ids <- id
	}
	close(ids)
	var mu sync.Mutex
	served := make(map[int64]time.Time, f.N)
	var firstErr error
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range c.Concurrency {
		wg.Go(func() {
			for id := range ids {
				if err := waitSlot(ctx, lim); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				u := username(id)
				body, _ := json.Marshal(map[string]string{"username": u, "password": sandbox.Password(u)})
				resp, err := client.Post(r.market.url+"/authToken", "application/json", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("sandbox answered %s", resp.Status)
					}
				}
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				served[id] = time.Now()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return OverloadRun{}, firstErr
	}
	run := overloadScore(exp, urgent, served)
	run.Seconds, run.Peak = time.Since(start).Seconds(), st.sb.Stats().PeakPerSecond
	return run, nil
}

func waitSlot(ctx context.Context, lim *ratelimit.Limiter) error {
	for {
		wait, err := lim.Take(ctx)
		if err != nil || wait == 0 {
			return err
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
}

// overloadScore scores a run: urgent lapses, their least slack, and the
// rank correlation of refresh order with expiry order.
func overloadScore(exp map[int64]time.Time, urgent map[int64]bool, served map[int64]time.Time) OverloadRun {
	run := OverloadRun{LeastSlack: time.Duration(math.MaxInt64)}
	var at, deadline []float64
	for id, e := range exp {
		t, ok := served[id]
		if urgent[id] {
			if !ok || !t.Before(e) {
				run.Lapses++
			}
			if ok {
				run.LeastSlack = min(run.LeastSlack, e.Sub(t))
			}
		}
		if ok {
			at = append(at, float64(t.UnixNano()))
			deadline = append(deadline, float64(e.UnixNano()))
		}
	}
	run.Spearman = Spearman(at, deadline)
	return run
}

// Spearman is Spearman's rank correlation of x and y (ties share their
// average rank): 1 when y's order is x's order, 0 when unrelated.
func Spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	if len(rx) == 0 {
		return 0
	}
	var mx, my float64
	for i := range rx {
		mx += rx[i]
		my += ry[i]
	}
	mx /= float64(len(rx))
	my /= float64(len(ry))
	var sxy, sxx, syy float64
	for i := range rx {
		dx, dy := rx[i]-mx, ry[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}
