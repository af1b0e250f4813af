package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// drainReport is a figure 2 whose product ran at prod tasks/s, beside a
// ceiling made of parts at 1,000 µs in all (bare 400, SELECT 200, HTTP 200,
// UPDATE 200) and product steps lease 50 µs and schedule 250 µs.
func drainReport(prod float64) *Report {
	runs := func(rate float64) []drainRun {
		return []drainRun{{Rate: rate, CPU: cpuUse{"product": 1e6}}}
	}
	return &Report{Machine: Machine{CPUs: 2}, Drain: DrainResult{
		N: 1000, Concurrency: 50,
		Bare: runs(2500), BareProductQueues: runs(2500), Product: runs(prod),
		Parts: []PartRow{
			{Key: "select", Name: "select", Floor: true, Rates: []float64{5000}},
			{Key: "http", Name: "http", Floor: true, Rates: []float64{5000}},
			{Key: "update", Name: "update", Floor: true, Rates: []float64{5000}},
			{Key: "lease", Name: "lease", Rates: []float64{20000}},
			{Key: "schedule", Name: "schedule", Rates: []float64{4000}},
		},
	}}
}

func TestCeilingComposesThePartsCosts(t *testing.T) {
	t.Parallel()
	d := drainReport(800).Drain
	assert.InDelta(t, 1000, d.Ceiling(), 1e-6, "1 ÷ (400 + 3 × 200 µs)")
	assert.InDelta(t, 0.8, d.Ratio(), 1e-9)
	g := d.Gap()
	assert.InDelta(t, 250, g.Total, 1e-6, "1,250 µs per task against 1,000")
	// lease 50 + schedule 250 + queue set 0; the SELECT is the ceiling's
	// own (a refresh reads its row once).
	assert.InDelta(t, -50, g.Rest(), 1e-6)
}

func TestVerdictDrainFollowsTheFigures(t *testing.T) {
	t.Parallel()
	fast, slow := verdictDrain(drainReport(800)), verdictDrain(drainReport(400))
	assert.Contains(t, fast, "Verdict: met")
	assert.Contains(t, fast, "0.80 of the composed ceiling (800 of 1,000 tasks/s)")
	assert.Contains(t, slow, "Verdict: missed")
	assert.Contains(t, slow, "0.40 of the composed ceiling (400 of 1,000 tasks/s)")
	// 2,500 µs per task against 1,000: 1,500 beyond, 300 explained.
	assert.Contains(t, slow, "Of the 1500 µs per task the product spent beyond it, the steps measured alone account for 20%")
	assert.NotContains(t, fast, "not accounted for", "the steps overexplain a gap of 250 µs")
	assert.Contains(t, fast, "cost 300 µs per task, more than the 250 µs it spent beyond the ceiling")
	assert.Contains(t, slow, "bare asynq dequeue and acknowledge, 40% of it")
}

func TestVerdictLimitFollowsTheFigures(t *testing.T) {
	t.Parallel()
	report := func(peak int, calls int) *Report {
		return &Report{Limit: LimitResult{Rows: []LimitRow{
			{Runs: []LimitRun{{Calls: 150, Refreshed: 100, Peak: 200, Seconds: 4}}},
			{Limit: 50, Runs: []LimitRun{{Calls: calls, Refreshed: 100, Peak: peak, Seconds: 5}}},
		}}}
	}
	within, over := verdictLimit(report(48, 105)), verdictLimit(report(70, 180))
	assert.Contains(t, within, "the peak stayed within the limit** (48 calls/s)")
	assert.Contains(t, within, "1.05 calls per refresh against 1.50 without the limit, 30% fewer")
	assert.Contains(t, over, "the peak was 70 calls/s, over the limit")
	assert.Contains(t, over, "1.80 calls per refresh against 1.50 without the limit, 20% more")
	for _, v := range []string{within, over} {
		assert.NotContains(t, v, "no rate limiter")
	}
}

func TestVerdictScanAndLatencyFollowTheFigures(t *testing.T) {
	t.Parallel()
	scan := func(prod ...float64) *Report {
		return &Report{Scan: []ScanRow{{N: 10_000, Bare: []float64{1000, 1000, 1000}, Product: prod}}}
	}
	good, bad := verdictScan(scan(900, 950, 850)), verdictScan(scan(500, 700, 600))
	assert.Contains(t, good, "Verdict: met")
	assert.Contains(t, good, "At N = 10,000 the median ratio was 0.90 and the best run's 0.95")
	assert.Contains(t, bad, "Verdict: missed")
	assert.Contains(t, bad, "median ratio was 0.60 and the best run's 0.70; the scanner's rates spread 40%")

	lat := func(rate float64) *Report {
		r := drainReport(5000)
		r.Latency = []LatencyRow{{Concurrency: 100, Latency: 50 * time.Millisecond, N: 2000, Runs: []drainRun{{Rate: rate}}}}
		return r
	}
	met, missed := verdictLatency(lat(1900)), verdictLatency(lat(1000))
	assert.Contains(t, met, "Verdict: met")
	assert.Contains(t, met, "3ms (c=100, 50ms)", "100 ÷ 1,900/s − 50 ms")
	assert.Contains(t, missed, "Verdict: missed")
	assert.Contains(t, missed, "50ms (c=100, 50ms)")
	assert.False(t, strings.Contains(met, "the machine, not the latency"), "the ideal 2,000/s is below the 0 ms rate")
}

func TestVerdictNaiveFollowsTheFigures(t *testing.T) {
	t.Parallel()
	r := drainReport(1000)
	r.Naive = NaiveResult{N: 100, Rates: []float64{500}}
	assert.Contains(t, verdictNaive(r), "2.0× as fast as the naive loop")
	r.Naive.Rates = []float64{2000}
	assert.Contains(t, verdictNaive(r), "0.5× the speed of the naive loop")
}
