package bench

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
)

// drainRun is one queue of N refresh tasks drained by workers.
type drainRun struct {
	Rate float64 // tasks/s from the first dequeue to the empty queue
	Peak int64   // the refresher's VmHWM, bytes (0 for in-process runs)
	CPU  cpuUse
	// Profile is the refresher's CPU by step over profileSeconds of the
	// drain (nil when not profiled).
	Profile *CPUProfile
}

// DrainResult is figure 2: the product refreshing N due connections
// against the sandbox at 0 ms, against the composed ceiling of the parts a
// refresh cannot avoid, each measured alone in the same run at the same
// concurrency (Parts). BareProductQueues is asynq with the refresher's
// queue set (task.ServerQueues) where Bare serves one queue.
type DrainResult struct {
	N                 int
	Concurrency       int
	Bare              []drainRun
	BareProductQueues []drainRun
	Product           []drainRun
	Parts             []PartRow
}

// minProfileSamples is the fewest samples a split by step is reported
// from (a profile samples 100 times a second per busy CPU).
const minProfileSamples = 100

// ProfileSteps is the refresher's CPU per task by step (µs, in
// profileSteps order): each step's share of the profiled CPU time times
// the refresher's median CPU per task. Empty when fewer than
// minProfileSamples were taken.
func (d DrainResult) ProfileSteps() []GapPart {
	prof := d.Profile()
	total := prof.Total()
	if prof.Samples < minProfileSamples || total <= 0 || d.N == 0 {
		return nil
	}
	perTask := cpuPerTask(d.Product, d.N, "product")
	names := StepNames()
	out := make([]GapPart, len(prof.Nanos))
	for i, n := range prof.Nanos {
		out[i] = GapPart{Name: names[i], Cost: perTask * float64(n) / float64(total)}
	}
	return out
}

// Profile is the product runs' CPU profiles summed.
func (d DrainResult) Profile() CPUProfile {
	var c CPUProfile
	for _, p := range d.Product {
		if p.Profile != nil {
			c.add(*p.Profile)
		}
	}
	return c
}

// queueSet is the queues an in-process bare asynq server serves.
type queueSet int

const (
	oneQueue queueSet = iota
	productQueues
)

// othersShare is the share of the machine's CPU time that other processes
// (other users of the shared machine) took during a run.
func (d drainRun) othersShare(cpus int) float64 {
	wall := d.CPU["wall"]
	if wall <= 0 {
		return 0
	}
	return float64(d.CPU["other"]) / (float64(wall) * float64(cpus))
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
		d.Bare = append(d.Bare, bare)
		d.BareProductQueues = append(d.BareProductQueues, bare2)
		if err := r.measureParts(ctx, f, d.Concurrency, &d.Parts); err != nil {
			return err
		}
		prod, err := r.drainProduct(ctx, f, d.Concurrency, sandbox.Faults{}, true)
		if err != nil {
			return err
		}
		d.Product = append(d.Product, prod)
		r.logf("drain N=%d c=%d run %d: bare %.0f/s, bare with the refresher's queues %.0f/s, ceiling %.0f/s, product %.0f/s (profile: %d samples)",
			f.N, d.Concurrency, run+1, bare.Rate, bare2.Rate, d.ceilingOf(run), prod.Rate, prod.Profile.Samples)
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
	_, err := parallel(ctx, 16, f.N, func(ctx context.Context, i int) error {
		ok, err := queue.Enqueue(ctx, payloadOf(f, f.First+int64(i)))
		if err == nil && !ok {
			err = fmt.Errorf("task of connection %d already queued", f.First+int64(i))
		}
		return err
	})
	return err
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
	if set == productQueues {
		queues = task.ServerQueues(q, 1)
	}
	srv := asynq.NewServerFromRedisClient(r.env.rdb, asynq.Config{
		Concurrency:              conc,
		Queues:                   queues,
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
// concurrency conc, against the sandbox with faults. profiled takes a CPU
// profile of the refresher (PPROF_ADDR) during the drain.
func (r *runner) drainProduct(ctx context.Context, f fleet, conc int, faults sandbox.Faults, profiled bool) (drainRun, error) {
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
	var extra map[string]string
	if profiled {
		addr, err := procs.FreeAddr()
		if err != nil {
			return drainRun{}, err
		}
		extra = map[string]string{"PPROF_ADDR": addr}
	}
	p, err := r.startRefresher(ctx, q, pf, conc, extra)
	if err != nil {
		return drainRun{}, err
	}
	defer p.stop(time.Minute)
	st := r.market.reset(faults, 0)
	type profiledRun struct {
		c   CPUProfile
		err error
	}
	profDone := make(chan profiledRun, 1)
	if profiled {
		// It starts with the drain (the queue is unpaused next) and
		// ends inside it.
		go func() {
			c, err := fetchProfile(ctx, extra["PPROF_ADDR"], profileSeconds)
			profDone <- profiledRun{c, err}
		}()
	}
	took, cpu, err := r.drain(ctx, q, f.N, newCPUMeter(p.Pid()), 10*time.Minute)
	if err != nil {
		return drainRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	run := drainRun{Rate: float64(f.N) / took.Seconds(), CPU: cpu}
	if profiled {
		pr := <-profDone
		if pr.err != nil {
			return drainRun{}, pr.err
		}
		run.Profile = &pr.c
	}
	if run.Peak, err = p.hwm(); err != nil {
		return drainRun{}, err
	}
	if err := p.stop(time.Minute); err != nil {
		return drainRun{}, err
	}
	if err := r.checkStored(ctx, f, st); err != nil {
		return drainRun{}, fmt.Errorf("%w; %s", err, p.tail())
	}
	return run, nil
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
	addr, err := procs.FreeAddr()
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

// asynqLog sends the in-process asynq server's warnings to the progress log.
type asynqLog struct{ r *runner }

func (l asynqLog) Debug(args ...any) {}
func (l asynqLog) Info(args ...any)  {}
func (l asynqLog) Warn(args ...any)  { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
func (l asynqLog) Error(args ...any) { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
func (l asynqLog) Fatal(args ...any) { l.r.logf("asynq: %s", fmt.Sprint(args...)) }
