package bench

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// costsHeadlinePrefix starts figure 9's rows of the Headlines table, so a
// run of figure 9 alone can replace them (Splice).
const costsHeadlinePrefix = "| 9 |"

// CostsHeadlines are figure 9's rows of the Headlines table (none when it
// did not run).
func (r *Report) CostsHeadlines() []string {
	c := r.Costs
	if !c.Ran() {
		return nil
	}
	idle := c.IdleRowsPerSecond()
	rows := []string{
		fmt.Sprintf("%s DB rows read per second of idle scanning (SCAN_INTERVAL=%s, %s + %s connections) | %s | ≤ %s | %s |",
			costsHeadlinePrefix, c.Case.ScanInterval, count(c.Case.Fleet), count(c.Case.Foreign), rate(idle),
			count(targetIdleRowsPerSecond), verdict(idle <= targetIdleRowsPerSecond)),
	}
	if a, ok := c.Amortized(); ok {
		rows = append(rows, fmt.Sprintf("%s the same with a full pass every FULL_SCAN_INTERVAL=%s amortized | %s | ≤ %s | %s |",
			costsHeadlinePrefix, c.Case.FullScanInterval, rate(a), count(targetIdleRowsPerSecond), verdict(a <= targetIdleRowsPerSecond)))
	}
	for _, run := range c.Runs {
		rows = append(rows, fmt.Sprintf("%s Redis commands per refresh sent by clients, %s (a script is one; idle background subtracted) | %.1f (%.1f executed, scripts' included) | ≤ %d | %s |",
			costsHeadlinePrefix, run.Variant, run.PerRefreshClient, run.PerRefresh, targetCmdsPerRefresh, verdict(run.PerRefreshClient <= targetCmdsPerRefresh)))
	}
	for _, run := range c.Runs {
		b := run.BytesPerConn(c.Case.Due)
		rows = append(rows, fmt.Sprintf("%s Redis memory per refreshed connection, %s | %s bytes | ≤ %d bytes | %s |",
			costsHeadlinePrefix, run.Variant, rate(b), targetBytesPerConn, verdict(b <= targetBytesPerConn)))
	}
	return rows
}

// Splice rewrites figure 9's section (between <!-- costs:begin --> and
// <!-- costs:end -->) and its Headlines rows in doc, a report of a
// whole run, with this run's: `make bench-costs` keeps docs/benchmarks.md
// current without running every figure.
func (r *Report) Splice(doc string) (string, error) {
	if !r.Costs.Ran() {
		return doc, fmt.Errorf("figure costs did not run")
	}
	doc, err := spliceSection(doc, "costs", r.CostsSection())
	if err != nil {
		return doc, err
	}
	return spliceRows(doc, costsHeadlinePrefix, r.CostsHeadlines()), nil
}

// CostsSection is figure 9 in Markdown, between its markers. It says when
// and on what it was measured itself, as it may be spliced into a report
// of another run.
func (r *Report) CostsSection() string {
	c := r.Costs
	cc := c.Case
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("<!-- costs:begin -->\n")
	w("## 9. Costs that grow with the work, not with the fleet\n\n")
	commit := r.Machine.Commit
	if commit == "" {
		commit = "unknown"
	}
	w("Counts, not timings (issue 21), so they hold on any machine. Measured once, %s UTC (%s), at commit %s, with\n",
		c.Started.Format("2006-01-02 15:04"), c.Took.Round(time.Second), commit)
	w("`make bench-costs` or `make bench`, on a private mariadbd (%s) and a private redis-server (%s) that the bench\n", c.MariaDB, c.Redis)
	w("started for this figure alone: their counters saw the product and the bench, whose own reads are taken out.")
	if r.Quick {
		w(" **Quick smoke run: tiny fleet; these counts mean little.**")
	}
	w("\n\n")

	idle := c.IdleRowsPerSecond()
	first := c.Runs[0]
	w("| figure | measured | target | |\n|---|---|---|---|\n")
	w("| DB rows read per second of idle scanning (`%s`, over %s after a %s warm-up, %s) | **%s** | ≤ %s | %s |\n",
		c.RowsCounter(), first.Variant.Window, cc.Warmup, first.Variant, rate(idle), count(targetIdleRowsPerSecond), verdict(idle <= targetIdleRowsPerSecond))
	w("| DB rows read by the scanner's start and first pass (a full pass) and what it started, alone | %s | | |\n", count(int(c.FullPassRows())))
	if a, ok := c.Amortized(); ok {
		w("| idle rate + one full pass per FULL_SCAN_INTERVAL=%s (first pass ÷ %.0f s) | %s | ≤ %s | %s |\n",
			cc.FullScanInterval, cc.FullScanInterval.Seconds(), rate(a), count(targetIdleRowsPerSecond), verdict(a <= targetIdleRowsPerSecond))
	} else {
		w("| idle rate + one full pass per FULL_SCAN_INTERVAL | – (this scanner does not read FULL_SCAN_INTERVAL: every pass is a full pass, and the idle rate holds them all) | ≤ %s | |\n",
			count(targetIdleRowsPerSecond))
	}
	for _, run := range c.Runs {
		w("| Redis commands per refresh sent by clients, %s (`total_commands_processed` less the commands scripts ran, which MONITOR shows as `lua`: a script's EVALSHA is one; idle background subtracted) | **%.1f** | ≤ %d | %s |\n",
			run.Variant, run.PerRefreshClient, targetCmdsPerRefresh, verdict(run.PerRefreshClient <= targetCmdsPerRefresh))
		w("| Redis commands per refresh executed, %s (`total_commands_processed`: the commands scripts run included; asynq's enqueue, dequeue and done scripts run 17 per task) | %.1f | | |\n",
			run.Variant, run.PerRefresh)
	}
	for _, run := range c.Runs {
		bpc := run.BytesPerConn(cc.Due)
		w("| Redis memory per refreshed connection, %s (`used_memory` after − before, the client buffers' change `mem_clients_normal` apart, ÷ %s) | **%s bytes** | ≤ %d bytes | %s |\n",
			run.Variant, count(cc.Due), rate(bpc), targetBytesPerConn, verdict(bpc <= targetBytesPerConn))
	}
	w("\n")

	w("### Setup\n\n")
	w("- Fleet: %s active Ajio connections (integration type %s, `channels.status` '0', tokens held, expiries spread evenly\n", count(cc.Fleet), costsType)
	w("  from 25 to 55 minutes after seeding, so none falls due by itself during the run), plus %s active rows of integration\n", count(cc.Foreign))
	w("  type %s, which no providers entry names, with a NULL `accessTokenExpiryAt` (never generated); seeded in %s.\n", costsForeignType, c.Seeded.Round(100*time.Millisecond))
	w("- Schema: `deploy/mysql/01-schema.sql` and the optional indexes of `deploy/mysql/03-indexes.sql` (database names\n")
	w("  replaced by the run's): %s.\n", indexNames(c.Indexes))
	var variants []string
	for _, run := range c.Runs {
		variants = append(variants, "`"+run.Variant.String()+"`")
	}
	w("- Providers: type %s, ajio, token_ttl 30m, refresh_before 10m; the marketplace is the sandbox at 0 ms. The product runs\n", costsType)
	w("  with each of these entries in turn, both processes restarted: %s. A rate limit, when set, is far above\n", strings.Join(variants, ", then "))
	w("  what the run reaches (the marketplace's busiest second saw %d calls), so it never holds a call back: it is there so\n", c.PeakCalls)
	w("  that the limiter's and the backlog's commands are counted.\n")
	full := "which this scanner does not read: its `--help` does not list it"
	if c.FullScanKnown {
		full = "which this scanner reads"
	}
	census := "neither binary's `--help` lists CENSUS_INTERVAL"
	if c.CensusSetting != "" {
		census = c.CensusSetting
	}
	w("- `bin/scanner` with SCAN_INTERVAL=%s and FULL_SCAN_INTERVAL=%s (%s), and `bin/refresher`; every\n", cc.ScanInterval, cc.FullScanInterval, full)
	w("  other setting default (%s). Each connects to MariaDB as a user of its own, so\n", census)
	w("  `information_schema.USER_STATISTICS` (userstat) tells their reads apart.\n")
	w("- Phase 1, idle: the first time, the scanner alone starts and makes its first pass, measured alone from its start\n")
	w("  until its \"scanned\" log line and then until its reads stay still for half a second (whatever the pass started in\n")
	w("  the background, such as a census, included); then the refresher starts; after %s of warm-up, the counters are\n", cc.Warmup)
	w("  read over the idle window:")
	for i, run := range c.Runs {
		sep := ";"
		if i == len(c.Runs)-1 {
			sep = "."
		}
		w(" %s with %s%s%s", run.Variant.Window, run.Variant, windowNote(cc, run.Variant.Window, c.CensusSetting), sep)
	}
	w("\n")
	w("- Phase 2, refreshes: one UPDATE makes %s connections (every %s id) expire 10 minutes 5 seconds later, so they enter\n", count(cc.Due), ordinal(cc.Fleet/max(cc.Due, 1)))
	w("  the 10-minute window 5 seconds later, as tokens do when their time comes; the run waits until the marketplace issued them, every row holds its new token and the queues are empty,\n")
	w("  then %s for asynq to settle. A first such burst, unmeasured, opens the client connections a burst needs (each costs\n", cc.Settle)
	w("  Redis some 20 kB of buffers, which says nothing of the bytes kept per connection, and a HELLO); the second, of\n")
	w("  as many other connections, is measured: Redis's counters are read before its UPDATE and after its settling.\n")
	w("- Marketplace calls:")
	for i, run := range c.Runs {
		sep := ";"
		if i == len(c.Runs)-1 {
			sep = "."
		}
		w(" with %s, %d while idle, %d in the first burst (%s), %d in the measured one (%s)%s", run.Variant, run.IdleCalls,
			run.WarmBurstCalls, run.WarmBurstTook.Round(100*time.Millisecond), run.RefreshCalls, run.RefreshTook.Round(100*time.Millisecond), sep)
	}
	w("\n\n")

	w("### Idle scanning: where the rows go\n\n")
	w("The census behind the gauges is taken by whichever long-running process holds the census lease: a scanner takes it\n")
	w("every SCAN_INTERVAL, a refresher every CENSUS_INTERVAL (`census.Lead`).\n\n")
	for _, run := range c.Runs {
		holders := "no process"
		if len(run.CensusHolders) > 0 {
			holders = "the " + strings.Join(run.CensusHolders, " and the ")
		}
		w("- With %s, the idle window held %d scan passes (the scanner's \"scanned\" log lines), which found %d\n",
			run.Variant, run.IdleLog.Passes, run.IdleLog.Due)
		w("  connections due and took %s each on average by their logs; %s had taken the census lease (its log says so).\n",
			secs(run.IdleLog.Seconds/float64(max(run.IdleLog.Passes, 1))), holders)
	}
	w("\nThe scanner's first pass took %s by its log. ", secs(c.FirstPassLog.Seconds))
	w("`SHOW GLOBAL STATUS` deltas, the bench's own reading of them taken out. `Rows_read` is MariaDB's count of rows read\n")
	w("from tables (temporary tables apart: `Rows_tmp_read`)")
	if _, ok := first.Idle.Counters["Innodb_rows_read"]; !ok {
		w("; this server has no `Innodb_rows_read`")
	}
	w(":\n\n| counter | scanner's start and first pass (%s) |", secs(c.FirstPass.Seconds))
	for _, run := range c.Runs {
		w(" idle, %s: per second | ÷ scan passes |", run.Variant)
	}
	w("\n|---|---|%s\n", strings.Repeat("---|---|", len(c.Runs)))
	for _, k := range dbCounters {
		if _, ok := first.Idle.Counters[k]; !ok {
			continue
		}
		name := "`" + k + "`"
		if k == "Com_select" {
			name += " (queries)"
		}
		w("| %s | %s |", name, count(int(c.FirstPass.Counters[k])))
		for _, run := range c.Runs {
			w(" %s | %s |", rate(run.Idle.rate(k)), perPass(run.Idle.Counters[k], run.IdleLog.Passes))
		}
		w("\n")
	}
	w("\nBy binary (`USER_STATISTICS`: rows read by the handler, which counts differently from InnoDB; the split is what it is for):\n\n")
	w("| user | first pass: rows read | SELECTs |")
	for _, run := range c.Runs {
		w(" idle, %s: rows read/s | SELECTs/s |", run.Variant)
	}
	w("\n|---|---|---|%s\n", strings.Repeat("---|---|", len(c.Runs)))
	for _, u := range []string{"scanner", "refresher"} {
		f := c.FirstPass.Users[u]
		w("| %s | %s | %s |", u, count(int(f.RowsRead)), count(int(f.Selects)))
		for _, run := range c.Runs {
			s := run.Idle.Users[u]
			w(" %s | %s |", rate(perSecond(s.RowsRead, run.Idle.Seconds)), rate(perSecond(s.Selects, run.Idle.Seconds)))
		}
		w("\n")
	}
	w("\n")

	w("### Redis commands per refresh\n\n")
	p := c.Probe
	w("What this Redis %s counts, probed on it before the product started: an `EVAL` whose script makes 3 `redis.call`\n", c.Redis)
	w("added %d to `total_commands_processed` and %d to the commandstats calls beyond the EVAL itself; `MULTI`, `SET`, `DEL`,\n", 1+p.EvalTotalExtra, p.EvalStatsExtra)
	w("`EXEC` sent by a client added %d to `total_commands_processed` and %d to commandstats. %s\n\n", 4+p.MultiTotalExtra, 4+p.MultiStatsExtra, probeSentence(p))
	w("Commands in the measured burst's window, less the idle background (that variant's idle rate of each command × the\n")
	w("window), ÷ %s refreshes; the bench's own commands (INFO, its polling of the queues) are taken out. A script's\n", count(cc.Due))
	w("`evalsha` counts once, and each command it runs counts again under its own name.\n\n")
	w("| command |")
	for _, run := range c.Runs {
		w(" %s: calls in the window (%s) | idle background | **per refresh** |", run.Variant, secs(run.Refresh.Seconds))
	}
	w("\n|---|%s\n", strings.Repeat("---|---|---|", len(c.Runs)))
	for _, name := range commandOrder(c.Runs) {
		w("| `%s` |", name)
		for _, run := range c.Runs {
			cm := commandOf(run.Commands, name)
			w(" %s | %.0f | %.2f |", count(int(cm.Calls)), cm.Background, cm.PerRefresh)
		}
		w("\n")
	}
	w("| **all (`total_commands_processed`)** |")
	for _, run := range c.Runs {
		bg := 0.0
		if run.IdleRedis.Seconds > 0 {
			bg = float64(run.IdleRedis.Total) * run.Refresh.Seconds / run.IdleRedis.Seconds
		}
		w(" %s | %.0f | **%.2f** |", count(int(run.Refresh.Total)), bg, run.PerRefresh)
	}
	w("\n| all (commandstats summed) |")
	for _, run := range c.Runs {
		w(" %s | | %.2f |", count(int(run.Refresh.sum())), run.PerRefreshSum)
	}
	w("\n\n")
	for _, run := range c.Runs {
		var bg []string
		for _, name := range commandOrder([]CostsRun{run}) {
			if n := run.IdleRedis.Calls[name]; n > 0 {
				bg = append(bg, fmt.Sprintf("`%s` %s", name, rate(perSecond(n, run.IdleRedis.Seconds))))
			}
		}
		w("Idle background with %s: %s commands/s (%s); the bench's own commands taken out of the burst's window: %d.\n",
			run.Variant, rate(perSecond(run.IdleRedis.Total, run.IdleRedis.Seconds)), strings.Join(bg, ", "), run.Refresh.Own)
	}
	w("\n")

	w("### Redis memory per refreshed connection\n\n")
	perConn := func(d int64) string { return rate(float64(d) / float64(cc.Due)) }
	w("`INFO` before the measured burst and after it settled:\n\n| |")
	for _, run := range c.Runs {
		w(" %s: before | after | change | ÷ %s |", run.Variant, count(cc.Due))
	}
	w("\n|---|%s\n", strings.Repeat("---|---|---|---|", len(c.Runs)))
	for _, m := range []struct {
		name string
		get  func(redisStats) int64
	}{
		{"`used_memory`", func(s redisStats) int64 { return s.UsedMemory }},
		{"**`used_memory` − `mem_clients_normal`** (the figure)", func(s redisStats) int64 { return s.UsedMemory - s.MemClients }},
		{"`used_memory_dataset` (the keys, without the server's overhead)", func(s redisStats) int64 { return s.UsedDataset }},
		{"`mem_clients_normal` (the client connections' buffers)", func(s redisStats) int64 { return s.MemClients }},
		{"`connected_clients`", func(s redisStats) int64 { return s.Clients }},
		{"keys (`db0`)", func(s redisStats) int64 { return s.Keys }},
	} {
		w("| %s |", m.name)
		for _, run := range c.Runs {
			a, z := m.get(run.MemBefore), m.get(run.MemAfter)
			w(" %s | %s | %s | %s |", count(int(a)), count(int(z)), signed(z-a), perConn(z-a))
		}
		w("\n")
	}
	w("\nOver the idle window `used_memory` moved by")
	for i, run := range c.Runs {
		sep := ","
		if i == len(c.Runs)-1 {
			sep = ""
		}
		w(" %s bytes with %s%s", signed(run.IdleMemoryDrift), run.Variant, sep)
	}
	w(", nothing refreshed. What the bytes are: every key, grouped by name with numbers and uuids replaced, with\n")
	w("`MEMORY USAGE` summed (SCAN, then TYPE, the length and MEMORY USAGE of each key), before and after the measured burst.\n")
	for _, run := range c.Runs {
		var grew int64
		for _, k := range run.Keys {
			grew += k.BytesAfter - k.BytesBefore
		}
		w("\nWith %s (the keys' MEMORY USAGE grew by %s bytes per refreshed connection in all):\n\n", run.Variant,
			rate(float64(grew)/float64(cc.Due)))
		w("| keys | type | keys before → after | elements before → after | MEMORY USAGE before → after | change ÷ %s |\n|---|---|---|---|---|---|\n", count(cc.Due))
		for _, k := range run.Keys {
			w("| `%s` | %s | %s → %s | %s → %s | %s → %s | %s |\n", k.Pattern, k.Type, count(k.KeysBefore), count(k.KeysAfter),
				count(int(k.ElemsBefore)), count(int(k.ElemsAfter)), count(int(k.BytesBefore)), count(int(k.BytesAfter)),
				rate(float64(k.BytesAfter-k.BytesBefore)/float64(cc.Due)))
		}
	}
	w("\n`MEMORY USAGE` estimates a key's own allocations (sampling large ones); `used_memory` also holds the server's\n")
	w("dictionaries and client buffers, so the two differ.\n")
	w("<!-- costs:end -->")
	return b.String()
}

// commandOrder is every command of the runs' breakdowns, the costliest
// (per refresh, summed over the runs) first; commands of no weight (no
// call in any window, under 0.005 per refresh) are left out.
func commandOrder(runs []CostsRun) []string {
	weight := map[string]float64{}
	for _, run := range runs {
		for _, cm := range run.Commands {
			if cm.Calls == 0 && math.Abs(cm.PerRefresh) < 0.005 {
				continue
			}
			weight[cm.Name] += cm.PerRefresh
		}
	}
	names := make([]string, 0, len(weight))
	for n := range weight {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(weight[b], weight[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return names
}

func commandOf(rows []CommandCost, name string) CommandCost {
	for _, r := range rows {
		if r.Name == name {
			return r
		}
	}
	return CommandCost{Name: name}
}

func indexNames(st []string) string {
	if len(st) == 0 {
		return "none"
	}
	out := make([]string, len(st))
	for i, s := range st {
		out[i] = "`" + strings.Join(strings.Fields(s), " ") + "`"
	}
	return strings.Join(out, "; ")
}

func probeSentence(p LuaProbe) string {
	var s []string
	if p.EvalTotalExtra >= 3 && p.EvalStatsExtra >= 3 {
		s = append(s, "So both count every command a script runs, besides the script's EVAL or EVALSHA: the executed figure counts every command Redis ran, in scripts or not, and the figure of commands sent by clients takes out those MONITOR shows a script running (`lua`)")
	} else if p.EvalStatsExtra >= 3 {
		s = append(s, "So `total_commands_processed` leaves out the commands a script runs and commandstats counts them: the commandstats sum below includes them")
	} else {
		s = append(s, "So neither counts the commands a script runs")
	}
	if p.MultiTotalExtra > p.MultiStatsExtra {
		s = append(s, fmt.Sprintf("a command queued in MULTI counts %d more in `total_commands_processed` than in commandstats", p.MultiTotalExtra-p.MultiStatsExtra))
	}
	if p.Unaccounted != 0 {
		s = append(s, fmt.Sprintf("two back-to-back snapshots counted %d commands beyond the bench's own", p.Unaccounted))
	}
	return strings.Join(s, "; ") + "."
}

// windowNote says what periods an idle window holds.
func windowNote(cc costsCase, window time.Duration, census string) string {
	var parts []string
	if cc.ScanInterval > 0 {
		parts = append(parts, fmt.Sprintf("%g scan intervals", window.Seconds()/cc.ScanInterval.Seconds()))
	}
	if i := strings.LastIndex(census, "default "); i >= 0 {
		if d, err := time.ParseDuration(census[i+len("default "):]); err == nil && d > 0 {
			parts = append(parts, fmt.Sprintf("%g census intervals", window.Seconds()/d.Seconds()))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func secs(s float64) string {
	return dur(time.Duration(s * float64(time.Second)))
}

func signed(n int64) string {
	if n > 0 {
		return "+" + count(int(n))
	}
	return count(int(n))
}

func perSecond(n int64, seconds float64) float64 {
	if seconds <= 0 {
		return math.NaN()
	}
	return float64(n) / seconds
}

func perPass(n int64, passes int) string {
	if passes <= 0 {
		return "–"
	}
	return count(int(math.Round(float64(n) / float64(passes))))
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}
