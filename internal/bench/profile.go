package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	pprofile "github.com/google/pprof/profile"
)

// profileSeconds is how long the refresher's CPU profile runs in each of
// figure 2's product runs: inside the drain (N = 10,000 takes several
// seconds at the rates this machine reaches).
const profileSeconds = 4

// profileSteps are the steps of a refresh the refresher's CPU profile is
// split into. A sample goes to the first step (in this order) whose frames
// its stack passes through, matched as substrings of function names; a
// sample that passes through none is "other". The order puts the
// product's own functions before the libraries they call, so a Redis
// round trip made by the lease counts to the lease, and an allocation's
// garbage-collection assist to the step that allocated.
var profileSteps = []struct {
	Name   string
	Frames []string
}{
	{"scheduling the next refresh (lifetime record, wake-up task)", []string{"internal/refresh.(*Handler).scheduleNext"}},
	{"the connection's lease (take, renew, release)", []string{"token-refresher/internal/lease."}},
	{"reading the row (SELECT by primary key)", []string{"internal/mysql.(*Store).Load"}},
	{"the guarded write (UPDATE)", []string{"internal/mysql.(*Store).Save"}},
	{"the marketplace call (request, HTTP client, reading the answer)", []string{"token-refresher/internal/provider", "net/http.(*persistConn)", "net/http.(*Transport)"}},
	{"the log line of each refresh (zap)", []string{"go.uber.org/zap"}},
	{"metrics (Prometheus)", []string{"token-refresher/internal/metrics.", "prometheus/client_golang"}},
	{"the rest of the handler (payload, due rule, outcome)", []string{"token-refresher/internal/refresh."}},
	{"asynq (dequeue, acknowledge, task leases, heartbeats)", []string{"github.com/hibiken/asynq"}},
	{"Go garbage collection (background)", []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}},
	{"Go scheduler and network poller (goroutine switches)", []string{"runtime.mcall", "runtime.schedule", "runtime.findRunnable", "runtime.netpoll", "runtime.morestack"}},
}

// otherStep is the name of the samples no step claims (the metrics
// endpoint, the census, start-up).
const otherStep = "other (the census, HTTP endpoints, start-up)"

// CPUProfile is the refresher's CPU time by step (profileSteps, then
// otherStep), summed over the runs profiled.
type CPUProfile struct {
	// Nanos[i] is the CPU time of step i; the last is otherStep's.
	Nanos   []int64
	Samples int
	Seconds int // profiled, summed over runs
}

// StepNames are CPUProfile.Nanos's step names, in order.
func StepNames() []string {
	names := make([]string, 0, len(profileSteps)+1)
	for _, s := range profileSteps {
		names = append(names, s.Name)
	}
	return append(names, otherStep)
}

// Total is the profiled CPU time.
func (c CPUProfile) Total() int64 {
	var t int64
	for _, n := range c.Nanos {
		t += n
	}
	return t
}

// add sums o into c.
func (c *CPUProfile) add(o CPUProfile) {
	if c.Nanos == nil {
		c.Nanos = make([]int64, len(o.Nanos))
	}
	for i, n := range o.Nanos {
		c.Nanos[i] += n
	}
	c.Samples += o.Samples
	c.Seconds += o.Seconds
}

// classify splits a Go CPU profile (its "cpu" sample values, in
// nanoseconds) by step.
func classify(p *pprofile.Profile) (CPUProfile, error) {
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			idx = i
		}
	}
	if idx < 0 {
		return CPUProfile{}, fmt.Errorf("not a CPU profile (sample types %v)", p.SampleType)
	}
	out := CPUProfile{Nanos: make([]int64, len(profileSteps)+1), Samples: len(p.Sample)}
	for _, s := range p.Sample {
		out.Nanos[stepOf(s)] += s.Value[idx]
	}
	return out, nil
}

// stepOf is the index of the step a sample belongs to (len(profileSteps)
// for otherStep).
func stepOf(s *pprofile.Sample) int {
	for i, step := range profileSteps {
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function == nil {
					continue
				}
				for _, f := range step.Frames {
					if strings.Contains(line.Function.Name, f) {
						return i
					}
				}
			}
		}
	}
	return len(profileSteps)
}

// fetchProfile takes a CPU profile of seconds from a process serving
// net/http/pprof at addr (its PPROF_ADDR) and splits it by step.
func fetchProfile(ctx context.Context, addr string, seconds int) (CPUProfile, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds), nil)
	if err != nil {
		return CPUProfile{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return CPUProfile{}, fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return CPUProfile{}, fmt.Errorf("CPU profile: HTTP %d", resp.StatusCode)
	}
	p, err := pprofile.Parse(resp.Body)
	if err != nil {
		return CPUProfile{}, fmt.Errorf("CPU profile: %w", err)
	}
	c, err := classify(p)
	c.Seconds = seconds
	return c, err
}
