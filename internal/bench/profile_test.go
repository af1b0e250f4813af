package bench

import (
	"testing"
	"time"

	pprofile "github.com/google/pprof/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stack is a profile sample's stack, leaf first, of the named functions.
func stack(names ...string) []*pprofile.Location {
	locs := make([]*pprofile.Location, len(names))
	for i, n := range names {
		locs[i] = &pprofile.Location{Line: []pprofile.Line{{Function: &pprofile.Function{Name: n}}}}
	}
	return locs
}

const (
	mod           = "github.com/eshopbox/token-refresher/internal/"
	handler       = mod + "refresh.(*Handler).refresh"
	processorExec = "github.com/hibiken/asynq.(*processor).exec.func1"
)

func TestProfileSplitsByStep(t *testing.T) {
	t.Parallel()
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	p := &pprofile.Profile{
		SampleType: []*pprofile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*pprofile.Sample{
			// A Redis round trip of the lease counts to the lease, not
			// to go-redis or asynq.
			{Value: []int64{1, ms(10)}, Location: stack("syscall.Syscall", "github.com/redis/go-redis/v9.(*baseClient).process",
				"github.com/bsm/redislock.(*Client).Obtain", mod+"lease.(*Manager).Acquire", handler, processorExec)},
			// asynq's client inside the schedule counts to scheduling.
			{Value: []int64{2, ms(20)}, Location: stack("github.com/hibiken/asynq.(*Client).EnqueueContext",
				mod+"task.(*Queue).Schedule", mod+"refresh.(*Handler).scheduleNext", handler, processorExec)},
			{Value: []int64{3, ms(30)}, Location: stack("github.com/go-sql-driver/mysql.(*mysqlConn).readPacket",
				mod+"mysql.(*Store).Load", mod+"refresh.(*Handler).load", handler, processorExec)},
			{Value: []int64{1, ms(5)}, Location: stack("runtime.mallocgc", "go.uber.org/zap.(*Logger).Info",
				mod+"refresh.(*Handler).ProcessTask", processorExec)},
			{Value: []int64{1, ms(7)}, Location: stack("github.com/hibiken/asynq/internal/rdb.(*RDB).Dequeue", "github.com/hibiken/asynq.(*processor).exec")},
			{Value: []int64{1, ms(3)}, Location: stack("runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker")},
			{Value: []int64{1, ms(4)}, Location: stack("syscall.Read", "net/http.(*persistConn).readLoop")},
			{Value: []int64{1, ms(1)}, Location: stack(mod + "census.(*Census).Take")},
		},
	}
	c, err := classify(p)
	require.NoError(t, err)
	got := map[string]int64{}
	for i, n := range c.Nanos {
		got[StepNames()[i]] = n / int64(time.Millisecond)
	}
	assert.Equal(t, map[string]int64{
		"scheduling the next refresh (lifetime record, wake-up task)":     20,
		"the connection's lease (take, renew, release)":                   10,
		"reading the row (SELECT by primary key)":                         30,
		"the guarded write (UPDATE)":                                      0,
		"the marketplace call (request, HTTP client, reading the answer)": 4,
		"the log line of each refresh (zap)":                              5,
		"metrics (Prometheus)":                                            0,
		"the rest of the handler (payload, due rule, outcome)":            0,
		"asynq (dequeue, acknowledge, task leases, heartbeats)":           7,
		"Go garbage collection (background)":                              3,
		"Go scheduler and network poller (goroutine switches)":            0,
		otherStep: 1,
	}, got)
	assert.Equal(t, 8, c.Samples)
	assert.Equal(t, ms(80), c.Total())

	_, err = classify(&pprofile.Profile{SampleType: []*pprofile.ValueType{{Type: "alloc_space", Unit: "bytes"}}})
	assert.ErrorContains(t, err, "not a CPU profile")
}

// profiled is drainReport with a CPU profile of the product run: the
// refresher used perTask µs of CPU per task, and the profile's samples
// split lease : schedule : read as 1 : 2 : 1.
func profiled(perTask float64, samples int) *Report {
	r := drainReport(800)
	run := &r.Drain.Product[0]
	run.CPU = cpuUse{"product": time.Duration(perTask * float64(r.Drain.N) * 1e3)}
	nanos := make([]int64, len(profileSteps)+1)
	nanos[0], nanos[1], nanos[2] = 2e6, 1e6, 1e6 // schedule, lease, read
	run.Profile = &CPUProfile{Nanos: nanos, Samples: samples, Seconds: profileSeconds}
	return r
}

func TestProfileStepsScaleTheRefreshersCPU(t *testing.T) {
	t.Parallel()
	steps := profiled(400, 200).Drain.ProfileSteps()
	require.Len(t, steps, len(profileSteps)+1)
	assert.InDelta(t, 200, steps[0].Cost, 1e-6, "half of 400 µs: scheduling")
	assert.InDelta(t, 100, steps[1].Cost, 1e-6, "a quarter: the lease")
	assert.InDelta(t, 100, steps[2].Cost, 1e-6, "a quarter: the read")
	assert.Empty(t, profiled(400, minProfileSamples-1).Drain.ProfileSteps(), "too few samples to split")
	assert.Empty(t, drainReport(800).Drain.ProfileSteps(), "not profiled")
}

func TestVerdictDrainNamesTheCostliestProfiledStep(t *testing.T) {
	t.Parallel()
	assert.Contains(t, verdictDrain(profiled(400, 200)),
		"the costliest step was scheduling the next refresh (lifetime record, wake-up task), 200 µs per task")
	assert.Contains(t, verdictDrain(profiled(800, 200)), "wake-up task), 400 µs per task")
	assert.NotContains(t, verdictDrain(drainReport(800)), "CPU profile")
	md := profiled(400, 200).Markdown()
	assert.Contains(t, md, "| the connection's lease (take, renew, release) | 100 µs | 25% |")
}
