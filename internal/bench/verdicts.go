package bench

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The verdicts beside the figures. Each sentence is computed from the
// run's figures or describes the method; none carries a figure or a
// finding from another run.

func verdictHead(met bool) string {
	if met {
		return "**Verdict: met.** "
	}
	return "**Verdict: missed in this run.** "
}

// spread is max ÷ min − 1 of v, as a percentage.
func spread(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	return 100 * (slices.Max(v)/slices.Min(v) - 1)
}

func verdictScan(r *Report) string {
	var b strings.Builder
	met := true
	var rows []string
	for _, sr := range r.Scan {
		met = met && sr.Ratio() >= targetScanRatio
		best := 0.0
		for i := range min(len(sr.Product), len(sr.Bare)) {
			best = max(best, sr.Product[i]/sr.Bare[i])
		}
		rows = append(rows, fmt.Sprintf("At N = %s the median ratio was %.2f and the best run's %.2f; the scanner's rates spread %.0f%% (highest ÷ lowest), the bare enqueues' %.0f%%",
			count(sr.N), sr.Ratio(), best, spread(sr.Product), spread(sr.Bare)))
	}
	b.WriteString(verdictHead(met))
	b.WriteString(strings.Join(rows, ". "))
	b.WriteString(".")
	return b.String()
}

// cpuPerTask is the median CPU µs per task of a part over runs.
func cpuPerTask(runs []drainRun, n int, part string) float64 {
	v := make([]float64, len(runs))
	for i, x := range runs {
		v[i] = float64(x.CPU[part]) / float64(n) / 1e3
	}
	return median(v)
}

// ownCPU is the CPU µs per task of everything but other users' load.
func ownCPU(runs []drainRun, n int) float64 {
	var t float64
	for _, p := range cpuParts {
		if p != "other" {
			t += cpuPerTask(runs, n, p)
		}
	}
	return t
}

func verdictDrain(r *Report) string {
	d := r.Drain
	var b strings.Builder
	b.WriteString(verdictHead(d.Ratio() >= targetDrainRatio))
	fmt.Fprintf(&b, "The product reached %.2f of the composed ceiling (%s of %s tasks/s).", d.Ratio(),
		rate(median(rates(d.Product))), rate(d.Ceiling()))
	// The costliest part of the ceiling.
	name, cost := "bare asynq dequeue and acknowledge", 1e6/median(rates(d.Bare))
	total := cost
	for _, p := range d.Parts {
		if p.Floor {
			total += p.Cost()
			if p.Cost() > cost {
				name, cost = p.Name, p.Cost()
			}
		}
	}
	fmt.Fprintf(&b, " The costliest part of the ceiling was %s, %s of it.", name, share(cost, total))
	g := d.Gap()
	if g.Total > 0 && len(g.Parts) > 0 {
		top := g.Parts[0]
		for _, p := range g.Parts[1:] {
			if p.Cost > top.Cost {
				top = p
			}
		}
		if g.Rest() > 0 {
			fmt.Fprintf(&b, " Of the %.0f µs per task the product spent beyond it, the steps measured alone account for %s, the largest being %s (%s);",
				g.Total, share(g.Total-g.Rest(), g.Total), top.Name, share(top.Cost, g.Total))
			fmt.Fprintf(&b, " %.0f µs (%s) is not accounted for by them.", g.Rest(), share(g.Rest(), g.Total))
		} else {
			fmt.Fprintf(&b, " The product's own steps, measured alone, cost %.0f µs per task, more than the %.0f µs it spent beyond the ceiling (the largest: %s): in the product they overlap.",
				g.Total-g.Rest(), g.Total, top.Name)
		}
	}
	bare, prod := ownCPU(d.Bare, d.N), ownCPU(d.Product, d.N)
	if bare > 0 && prod > 0 {
		fmt.Fprintf(&b, " Across the processes a refresh cost %.0f µs of CPU (the refresher itself %.0f), bare asynq's drain %.0f µs.",
			prod, cpuPerTask(d.Product, d.N, "product"), bare)
	}
	if steps := d.ProfileSteps(); len(steps) > 0 {
		top := slices.MaxFunc(steps, func(a, b GapPart) int { return cmp.Compare(a.Cost, b.Cost) })
		fmt.Fprintf(&b, " In the refresher's CPU profile the costliest step was %s, %.0f µs per task.", top.Name, top.Cost)
	}
	return b.String()
}

func verdictLatency(r *Report) string {
	ceiling := median(rates(r.Drain.Product))
	var b strings.Builder
	met := true
	var over, bound []string
	for _, l := range r.Latency {
		met = met && l.Rate()/l.Bound(ceiling) >= targetLatencyRatio
		o := time.Duration((float64(l.Concurrency)/l.Rate() - l.Latency.Seconds()) * float64(time.Second))
		over = append(over, fmt.Sprintf("%s (c=%d, %s)", o.Round(time.Millisecond), l.Concurrency, l.Latency))
		if l.Ideal() > ceiling {
			bound = append(bound, fmt.Sprintf("c=%d at %s", l.Concurrency, l.Latency))
		}
	}
	b.WriteString(verdictHead(met))
	b.WriteString("A worker spends the marketplace latency plus the refresh's own time per task, so the rate is c ÷ (latency + overhead); the overhead per task in this run was ")
	b.WriteString(strings.Join(over, ", "))
	b.WriteString(".")
	if len(bound) > 0 {
		fmt.Fprintf(&b, " The ideal was above the 0 ms rate of figure 2 for %s: there the machine, not the latency, is the bound.", strings.Join(bound, ", "))
	}
	return b.String()
}

func verdictNaive(r *Report) string {
	n := r.Naive
	prod := median(rates(r.Drain.Product))
	cmp := func(x float64) string {
		if x >= 1 {
			return fmt.Sprintf("%s as fast as", times(x))
		}
		return fmt.Sprintf("%s the speed of", times(x))
	}
	s := fmt.Sprintf("At 0 ms the product was %s the naive loop.", cmp(prod/median(n.Rates)))
	if slow := r.latencyAt(n.Latency); slow != nil && len(n.Slow) > 0 {
		s += fmt.Sprintf(" At %s it was %s the naive loop (c=%d).", n.Latency, cmp(slow.Rate()/median(n.Slow)), slow.Concurrency)
	}
	return s
}

func verdictFresh(fr FreshResult) string {
	after := 0
	for _, x := range fr.Runs {
		after += x.AfterExpiry + x.Lapsed
	}
	var b strings.Builder
	b.WriteString(verdictHead(fr.p99() <= fr.Case.Target() && after == 0))
	fmt.Fprintf(&b, "The median p99 from due to stored was %s against a target of %s, and %d token(s) over all runs were stored after expiry or expired unrenewed.",
		dur(fr.p99()), fr.Case.Target(), after)
	return b.String()
}

func verdictMemory(r *Report) string {
	var parts []string
	if g, ok := r.scannerGrowth(); ok {
		lo, hi := r.ScannerMemory[0].N, r.ScannerMemory[len(r.ScannerMemory)-1].N
		parts = append(parts, fmt.Sprintf("The scanner's peak grew %.2f× for %d× the connections (%s).",
			g, hi/max(1, lo), map[bool]string{true: "not in proportion", false: "**in proportion or worse**"}[g < targetScannerGrowth]))
	}
	if c, peak, ok := r.refresherPeak(); ok {
		parts = append(parts, fmt.Sprintf("The refresher at c=%d peaked at %.0f MB, %s the %d MB target.",
			c, mb(peak), map[bool]string{true: "within", false: "**over**"}[mb(peak) <= targetRefresherMB], targetRefresherMB))
	}
	return strings.Join(parts, " ")
}

func verdictLimit(r *Report) string {
	var none, limited *LimitRow
	for i := range r.Limit.Rows {
		if r.Limit.Rows[i].Limit > 0 {
			limited = &r.Limit.Rows[i]
		} else {
			none = &r.Limit.Rows[i]
		}
	}
	var b strings.Builder
	b.WriteString("Calls per refresh above 1 are calls the marketplace answered 429, each retried after its Retry-After.")
	if limited != nil {
		if limited.PeakRate() <= limited.Limit {
			fmt.Fprintf(&b, " **With `rate_limit_per_second: %g` the peak stayed within the limit** (%.0f calls/s).", limited.Limit, limited.PeakRate())
		} else {
			fmt.Fprintf(&b, " **With `rate_limit_per_second: %g` the peak was %.0f calls/s, over the limit.**", limited.Limit, limited.PeakRate())
		}
	}
	if limited != nil && none != nil {
		saved := 100 * (1 - limited.CallsPerRefresh()/none.CallsPerRefresh())
		word := "fewer"
		if saved < 0 {
			word, saved = "more", -saved
		}
		fmt.Fprintf(&b, " It made %.2f calls per refresh against %.2f without the limit, %.0f%% %s,", limited.CallsPerRefresh(), none.CallsPerRefresh(), saved, word)
		fmt.Fprintf(&b, " and refreshed every connection in %.1f s against %.1f s.", limited.Seconds(), none.Seconds())
	}
	return b.String()
}
