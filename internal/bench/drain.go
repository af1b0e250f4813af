package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
)

// drainRun is one queue of N refresh tasks drained by workers.
type drainRun struct {
	Rate float64 // tasks/s from the first dequeue to the empty queue
	Peak int64   // the refresher's VmHWM, bytes (0 for in-process runs)
	CPU  cpuUse
}

// DrainResult is figure 2: the product refreshing N due connections
// against the sandbox at 0 ms (load, call, guarded write) against asynq
// draining the same N tasks with a handler that does nothing, at the same
// concurrency. BareProductQueues is asynq with the refresher's queue set
// (task.ServerQueues), BareStrict with the strict-priority set it had
// before, where every take tried the empty urgent queue first.
type DrainResult struct {
	N                 int
	Concurrency       int
	Bare              []drainRun
	BareProductQueues []drainRun
	BareStrict        []drainRun
	Product           []drainRun
	Updates           []UpdateRow
}

// queueSet is the queues an in-process bare asynq server serves.
type queueSet int

const (
	oneQueue queueSet = iota
	productQueues
	strictQueues
)

// Ratio is the median over runs of the product rate over the bare rate of
// the same run.
func (d DrainResult) Ratio() float64 { return pairedRatio(rates(d.Product), rates(d.Bare)) }

// othersShare is the share of the machine's CPU time that other processes
// (other users of the shared machine) took during a run.
func (d drainRun) othersShare(cpus int) float64 {
	wall := d.CPU["wall"]
	if wall <= 0 {
		return 0
	}
	return float64(d.CPU["other"]) / (float64(wall) * float64(cpus))
}

// UpdateRow is the rate of bare single-row UPDATEs by primary key.
type UpdateRow struct {
	Conns int
	Rates []float64
}

func rates(runs []drainRun) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = r.Rate
	}
	return out
}

func (r *runner) drainSection(ctx context.Context, rep *Report) error {
	f := r.sz.mainFleet()
	d := DrainResult{N: f.N, Concurrency: r.sz.drainConc}
	for run := range r.cfg.Runs {
		bare, err := r.drainBare(ctx, f, d.Concurrency, oneQueue)
		if err != nil {
			return err
		}
		bare2, err := r.drainBare(ctx, f, d.Concurrency, productQueues)
		if err != nil {
			return err
		}
		strict, err := r.drainBare(ctx, f, d.Concurrency, strictQueues)
		if err != nil {
			return err
		}
		prod, err := r.drainProduct(ctx, f, d.Concurrency, sandbox.Faults{}, nil)
		if err != nil {
			return err
		}
		d.Bare = append(d.Bare, bare)
		d.BareProductQueues = append(d.BareProductQueues, bare2)
		d.BareStrict = append(d.BareStrict, strict)
		d.Product = append(d.Product, prod)
		r.logf("drain N=%d c=%d run %d: bare %.0f/s, bare with the refresher's queues %.0f/s, strict %.0f/s, product %.0f/s",
			f.N, d.Concurrency, run+1, bare.Rate, bare2.Rate, strict.Rate, prod.Rate)
	}
	for _, conns := range []int{1, 32} {
		row := UpdateRow{Conns: conns}
		for run := range r.cfg.Runs {
			rate, err := r.updates(ctx, f, conns, r.sz.updates[conns])
			if err != nil {
				return err
			}
			row.Rates = append(row.Rates, rate)
			r.logf("UPDATE by id on %d connections run %d: %.0f/s", conns, run+1, rate)
		}
		d.Updates = append(d.Updates, row)
	}
	rep.Drain = d
	return nil
}

// enqueue puts f's tasks into q (paused, so nothing runs yet) from 16
// goroutines, the scanner's default.
func (r *runner) enqueue(ctx context.Context, q string, f fleet) error {
	if err := r.env.inspector.PauseQueue(q); err != nil {
		return err
	}
	queue := task.NewQueue(r.env.rdb, q, taskTimeout)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(f.N) {
					return
				}
				ok, err := queue.Enqueue(ctx, payloadOf(f, f.First+i))
				if err == nil && !ok {
					err = fmt.Errorf("task of connection %d already queued", f.First+i)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	return nil
}

// drain unpauses q and waits until it is empty. The clock starts at the
// first dequeue (workers poll a paused queue only every few hundred ms),
// and the CPU meter covers the same span.
func (r *runner) drain(ctx context.Context, q string, n int, meter *cpuMeter, timeout time.Duration) (time.Duration, cpuUse, error) {
	if err := r.env.inspector.UnpauseQueue(q); err != nil {
		return 0, nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		sz, err := r.env.queueSize(ctx, q)
		if err != nil {
			return 0, nil, err
		}
		if sz.pending < int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("no worker took a task of %s within %s", q, timeout)
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return 0, nil, err
		}
	}
	t0 := time.Now()
	s0 := meter.sample()
	for {
		sz, err := r.env.queueSize(ctx, q)
		if err != nil {
			return 0, nil, err
		}
		if sz.left() == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("%s not drained within %s: %+v", q, timeout, sz)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return 0, nil, err
		}
	}
	took := time.Since(t0)
	return took, meter.since(s0), nil
}

// drainBare drains f's tasks with an in-process asynq server whose handler
// does nothing, configured as the refresher configures its own.
func (r *runner) drainBare(ctx context.Context, f fleet, conc int, set queueSet) (drainRun, error) {
	q := r.env.newQueue("b")
	defer r.env.dropQueue(q)
	if err := r.enqueue(ctx, q, f); err != nil {
		return drainRun{}, err
	}
	queues := map[string]int{q: 1}
	switch set {
	case productQueues:
		queues = task.ServerQueues(q)
	case strictQueues:
		queues = map[string]int{task.UrgentQueue(q): 10, q: 1}
	}
	srv := asynq.NewServerFromRedisClient(r.env.rdb, asynq.Config{
		Concurrency:              conc,
		Queues:                   queues,
		StrictPriority:           set == strictQueues,
		DelayedTaskCheckInterval: time.Second,
		TaskCheckInterval:        200 * time.Millisecond,
		Logger:                   asynqLog{r},
		LogLevel:                 asynq.WarnLevel,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeRefresh, func(context.Context, *asynq.Task) error { return nil })
	if err := srv.Start(mux); err != nil {
		return drainRun{}, err
	}
	took, cpu, err := r.drain(ctx, q, f.N, newCPUMeter(0), 5*time.Minute)
	srv.Shutdown()
	if err != nil {
		return drainRun{}, err
	}
	return drainRun{Rate: float64(f.N) / took.Seconds(), CPU: cpu}, nil
}

// drainProduct refreshes f's connections with a bin/refresher process at
// concurrency conc, against the sandbox with faults. extra adds settings.
func (r *runner) drainProduct(ctx context.Context, f fleet, conc int, faults sandbox.Faults, extra map[string]string) (drainRun, error) {
	if err := r.env.reset(ctx, f); err != nil {
		return drainRun{}, err
	}
	q := r.env.newQueue("r")
	defer r.env.dropQueue(q)
	if err := r.enqueue(ctx, q, f); err != nil {
		return drainRun{}, err
	}
	pf, err := r.providersFile("main", providerEntry{Type: f.Type, TTL: 30 * time.Minute, Before: 10 * time.Minute})
	if err != nil {
		return drainRun{}, err
	}
	p, err := r.startRefresher(ctx, q, pf, conc, extra)
	if err != nil {
		return drainRun{}, err
	}
	defer p.stop(time.Minute)
	st := r.market.reset(faults, 0)
	took, cpu, err := r.drain(ctx, q, f.N, newCPUMeter(p.cmd.Process.Pid), 10*time.Minute)
	if err != nil {
		return drainRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	peak, err := p.hwm()
	if err != nil {
		return drainRun{}, err
	}
	if err := p.stop(time.Minute); err != nil {
		return drainRun{}, err
	}
	if err := r.checkStored(ctx, f, st); err != nil {
		return drainRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	return drainRun{Rate: float64(f.N) / took.Seconds(), Peak: peak, CPU: cpu}, nil
}

// checkStored fails unless every connection of f got a token, each from
// exactly one marketplace call.
func (r *runner) checkStored(ctx context.Context, f fleet, st *marketState) error {
	n, err := r.env.stored(ctx, f)
	if err != nil {
		return err
	}
	if n != f.N {
		return fmt.Errorf("%d of %d connections got a new token", n, f.N)
	}
	if got := st.sb.Stats().Issued; got != f.N {
		return fmt.Errorf("the sandbox issued %d tokens for %d connections", got, f.N)
	}
	return nil
}

func (r *runner) startRefresher(ctx context.Context, q, providers string, conc int, extra map[string]string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	vars := r.vars(q, providers, map[string]string{
		"REFRESH_CONCURRENCY": strconv.Itoa(conc),
		"HTTP_ADDR":           addr,
	})
	for k, v := range extra {
		vars[k] = v
	}
	p, err := r.env.start(r.cfg.BinDir, "refresher", nil, vars)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

// updates is the rate of bare single-row UPDATEs by primary key on conns
// connections: the write a refresh makes, without the guard, with the
// product's driver settings.
func (r *runner) updates(ctx context.Context, f fleet, conns, total int) (float64, error) {
	db, err := sqlx.Open("mysql", r.env.productIE)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	// Open every connection before the clock starts.
	var warm []*sqlx.Conn
	for range conns {
		c, err := db.Connx(ctx)
		if err != nil {
			return 0, err
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		c.Close()
	}
	exp := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Second)
	tok := "ajio-at-" + randomID() + randomID() + randomID() + randomID()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := time.Now()
	for range conns {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				id := f.First + i%int64(f.N)
				if _, err := db.ExecContext(ctx, `UPDATE ie_appinstall_connection
					SET accessToken = ?, accessTokenExpiryAt = ? WHERE id = ?`, tok, exp, id); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(total) / took.Seconds(), nil
}

// asynqLog sends the in-process asynq server's warnings to the progress log.
type asynqLog struct{ r *runner }

func (l asynqLog) Debug(args ...any) {}
func (l asynqLog) Info(args ...any)  {}
func (l asynqLog) Warn(args ...any)  { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
func (l asynqLog) Error(args ...any) { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
func (l asynqLog) Fatal(args ...any) { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
