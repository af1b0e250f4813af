package bench

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An INFO answer of Redis 7.0 with the sections the costs figure asks for
// (abridged).
const infoText = "# Stats\r\n" +
	"total_connections_received:12\r\n" +
	"total_commands_processed:1500\r\n" +
	"instantaneous_ops_per_sec:3\r\n" +
	"\r\n" +
	"# Commandstats\r\n" +
	"cmdstat_evalsha:calls=500,usec=1000,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_hset:calls=200,usec=100,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_client|setinfo:calls=4,usec=4,usec_per_call=1.00,rejected_calls=0,failed_calls=0\r\n" +
	"cmdstat_info:calls=7,usec=300,usec_per_call=42.86,rejected_calls=0,failed_calls=0\r\n" +
	"\r\n" +
	"# Memory\r\n" +
	"used_memory:1048576\r\n" +
	"used_memory_human:1.00M\r\n" +
	"used_memory_dataset:524288\r\n" +
	"mem_clients_normal:40000\r\n" +
	"\r\n" +
	"# Clients\r\n" +
	"connected_clients:5\r\n" +
	"\r\n" +
	"# Keyspace\r\n" +
	"db0:keys=12,expires=3,avg_ttl=0\r\n"

func TestParseRedisStats(t *testing.T) {
	t.Parallel()
	s, err := parseRedisStats(infoText)
	require.NoError(t, err)
	assert.Equal(t, int64(1500), s.Total)
	assert.Equal(t, map[string]int64{"evalsha": 500, "hset": 200, "client|setinfo": 4, "info": 7}, s.Calls)
	assert.Equal(t, int64(1048576), s.UsedMemory)
	assert.Equal(t, int64(524288), s.UsedDataset)
	assert.Equal(t, int64(40000), s.MemClients)
	assert.Equal(t, int64(5), s.Clients)
	assert.Equal(t, int64(12), s.Keys)

	_, err = parseRedisStats("# Stats\ntotal_commands_processed:12\n")
	assert.Error(t, err, "an answer without the memory section is refused")
}

// TestRedisDelta: the bench's own commands (counted before each INFO) are
// taken out of the total and of their commands' calls.
func TestRedisDelta(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := redisStats{At: t0, Total: 100, Calls: map[string]int64{"evalsha": 40, "info": 3, "llen": 10},
		Own: map[string]int64{"info": 3, "llen": 10}}
	b := redisStats{At: t0.Add(10 * time.Second), Total: 160, Calls: map[string]int64{"evalsha": 90, "info": 4, "llen": 16, "hset": 3},
		Own: map[string]int64{"info": 4, "llen": 16}}
	d := b.since(a)
	assert.Equal(t, 10.0, d.Seconds)
	assert.Equal(t, int64(7), d.Own)
	assert.Equal(t, int64(53), d.Total, "60 counted, 7 of them the bench's")
	assert.Equal(t, map[string]int64{"evalsha": 50, "hset": 3}, d.Calls)
	assert.Equal(t, int64(53), d.sum())
}

// TestPerRefresh: the idle rate of each command, times the window's
// length, is taken out before dividing by the refreshes.
func TestPerRefresh(t *testing.T) {
	t.Parallel()
	idle := cmdDelta{Seconds: 100, Total: 1000, Calls: map[string]int64{"evalsha": 800, "rpoplpush": 200}}
	window := cmdDelta{Seconds: 20, Total: 5200, Calls: map[string]int64{"evalsha": 3160, "rpoplpush": 240, "hset": 1000, "ping": 0}}
	rows, total, sum := perRefresh(idle, window, 200)
	// Background over 20 s: evalsha 160, rpoplpush 40, 200 in all.
	assert.InDelta(t, (5200.0-200)/200, total, 1e-9)
	assert.InDelta(t, (4400.0-200)/200, sum, 1e-9)
	require.Len(t, rows, 4)
	assert.Equal(t, CommandCost{Name: "evalsha", Calls: 3160, Background: 160, PerRefresh: 15}, rows[0])
	assert.Equal(t, CommandCost{Name: "hset", Calls: 1000, Background: 0, PerRefresh: 5}, rows[1])
	assert.Equal(t, CommandCost{Name: "rpoplpush", Calls: 240, Background: 40, PerRefresh: 1}, rows[2])
	assert.Equal(t, "ping", rows[3].Name)

	_, total, _ = perRefresh(cmdDelta{}, window, 200)
	assert.InDelta(t, 26.0, total, 1e-9, "no idle window: nothing to subtract")
}

func TestDBDelta(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := dbStatus{At: t0, Counters: map[string]int64{"Rows_read": 1000, "Com_select": 10, "Handler_read_rnd_next": 50},
		Users: map[string]userStat{"scanner": {RowsRead: 900, Selects: 8}}}
	b := dbStatus{At: t0.Add(4 * time.Second), Counters: map[string]int64{"Rows_read": 9000, "Com_select": 30, "Handler_read_rnd_next": 80},
		Users: map[string]userStat{"scanner": {RowsRead: 8000, Selects: 20}, "refresher": {RowsRead: 500, Selects: 3}}}
	d := b.since(a, map[string]int64{"Com_select": 1, "Handler_read_rnd_next": 10})
	assert.Equal(t, map[string]int64{"Rows_read": 8000, "Com_select": 19, "Handler_read_rnd_next": 20}, d.Counters,
		"the bench's own reads are taken out; counters the server lacks are left out")
	assert.Equal(t, 2000.0, d.rate("Rows_read"))
	assert.Equal(t, userStat{RowsRead: 7100, Selects: 12}, d.Users["scanner"])
	assert.Equal(t, userStat{RowsRead: 500, Selects: 3}, d.Users["refresher"], "a user first seen in b")
	assert.Equal(t, "Rows_read", rowsCounter(d.Counters))
	assert.Equal(t, "Innodb_rows_read", rowsCounter(map[string]int64{"Innodb_rows_read": 1}))
	assert.True(t, math.IsNaN(dbDelta{}.rate("Rows_read")))
}

func TestCostsFigures(t *testing.T) {
	t.Parallel()
	c := CostsResult{
		Case:      costsCase{Due: 2000, FullScanInterval: 10 * time.Minute},
		FirstPass: dbDelta{Seconds: 2, Counters: map[string]int64{"Rows_read": 420_000}},
		Runs: []CostsRun{{
			Idle:      dbDelta{Seconds: 120, Counters: map[string]int64{"Rows_read": 240_000}},
			MemBefore: redisStats{UsedMemory: 5_000_000, MemClients: 1_000_000},
			MemAfter:  redisStats{UsedMemory: 6_300_000, MemClients: 900_000},
		}, {
			Idle: dbDelta{Seconds: 60, Counters: map[string]int64{"Rows_read": 600_000}},
		}},
		FullScanKnown: true,
	}
	assert.True(t, c.Ran())
	assert.Equal(t, 2000.0, c.IdleRowsPerSecond(), "the first run's idle window")
	assert.Equal(t, int64(420_000), c.FullPassRows())
	a, ok := c.Amortized()
	assert.True(t, ok)
	assert.InDelta(t, 2000+700, a, 1e-9, "420,000 rows every 600 s")
	assert.InDelta(t, 700, c.Runs[0].BytesPerConn(2000), 1e-9, "1.3 MB more, 0.1 MB of it freed client buffers: 1.4 MB ÷ 2,000")
	c.FullScanKnown = false
	_, ok = c.Amortized()
	assert.False(t, ok, "a scanner that does not read FULL_SCAN_INTERVAL has no amortized figure")
	assert.False(t, CostsResult{}.Ran())
	assert.True(t, math.IsNaN(CostsResult{}.IdleRowsPerSecond()))
}

func TestCommandOrder(t *testing.T) {
	t.Parallel()
	runs := []CostsRun{
		{Commands: []CommandCost{{Name: "evalsha", Calls: 10, PerRefresh: 5}, {Name: "hset", Calls: 4, PerRefresh: 2}, {Name: "ping"}}},
		{Commands: []CommandCost{{Name: "evalsha", Calls: 16, PerRefresh: 8}, {Name: "zadd", Calls: 8, PerRefresh: 4}, {Name: "hlen", Calls: 2, PerRefresh: -0.001}}},
	}
	assert.Equal(t, []string{"evalsha", "zadd", "hset", "hlen"}, commandOrder(runs), "ping had no call in any window")
	assert.Equal(t, CommandCost{Name: "zadd"}, commandOf(runs[0].Commands, "zadd"))
}

func TestWindowNote(t *testing.T) {
	t.Parallel()
	cc := costsCase{ScanInterval: 3 * time.Second}
	assert.Equal(t, " (40 scan intervals, 2 census intervals)", windowNote(cc, 2*time.Minute, "refresher's CENSUS_INTERVAL, default 1m"))
	assert.Equal(t, " (20 scan intervals)", windowNote(cc, time.Minute, ""))
}

func TestKeyPatternAndGroups(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"asynq:{token_refresh}:t:wake:12345@1789000000":                    "asynq:{token_refresh}:t:wake:<n>@<n>",
		"asynq:{token_refresh}:t:3f2c9a1e-1b2c-4d5e-8f90-a1b2c3d4e5f6":     "asynq:{token_refresh}:t:<uuid>",
		"token_refresher:{token_refresh}:lifetimes":                        "token_refresher:{token_refresh}:lifetimes",
		"asynq:servers:{vm7:4242:3f2c9a1e-1b2c-4d5e-8f90-a1b2c3d4e5f6}":    "asynq:servers:{vm<n>:<n>:<uuid>}",
		"token-refresher:{token_refresh}:lease:conn:99":                    "token-refresher:{token_refresh}:lease:conn:<n>",
		"asynq:{token_refresh}:processed:2026-12-01":                       "asynq:{token_refresh}:processed:<n>-<n>-<n>",
		"token-refresher:{token_refresh}:backlog:16":                       "token-refresher:{token_refresh}:backlog:<n>",
		"asynq:{token_refresh_urgent}:pending":                             "asynq:{token_refresh_urgent}:pending",
		"token_refresher:{token_refresh}:notified:deadbeef-0000-0000-0000": "token_refresher:{token_refresh}:notified:deadbeef-<n>-<n>-<n>",
	} {
		assert.Equal(t, want, keyPattern(key), key)
	}
	before := groupKeys([]keyInfo{
		{Name: "asynq:{q}:t:wake:1@100", Type: "hash", Elements: 2, Bytes: 400},
		{Name: "token_refresher:{q}:lifetimes", Type: "hash", Elements: 1, Bytes: 100},
	})
	after := groupKeys([]keyInfo{
		{Name: "asynq:{q}:t:wake:1@100", Type: "hash", Elements: 2, Bytes: 400},
		{Name: "asynq:{q}:t:wake:2@100", Type: "hash", Elements: 2, Bytes: 416},
		{Name: "token_refresher:{q}:lifetimes", Type: "hash", Elements: 2, Bytes: 150},
		{Name: "asynq:{q}:scheduled", Type: "zset", Elements: 2, Bytes: 200},
	})
	assert.Equal(t, []KeyGroup{
		{Pattern: "asynq:{q}:t:wake:<n>@<n>", Type: "hash", Keys: 2, Elements: 4, Bytes: 816},
		{Pattern: "asynq:{q}:scheduled", Type: "zset", Keys: 1, Elements: 2, Bytes: 200},
		{Pattern: "token_refresher:{q}:lifetimes", Type: "hash", Keys: 1, Elements: 2, Bytes: 150},
	}, after)
	assert.Equal(t, []KeyChange{
		{Pattern: "asynq:{q}:t:wake:<n>@<n>", Type: "hash", KeysBefore: 1, KeysAfter: 2, ElemsBefore: 2, ElemsAfter: 4, BytesBefore: 400, BytesAfter: 816},
		{Pattern: "asynq:{q}:scheduled", Type: "zset", KeysAfter: 1, ElemsAfter: 2, BytesAfter: 200},
		{Pattern: "token_refresher:{q}:lifetimes", Type: "hash", KeysBefore: 1, KeysAfter: 1, ElemsBefore: 1, ElemsAfter: 2, BytesBefore: 100, BytesAfter: 150},
	}, keyChanges(before, after))
}

func TestCmdstatName(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "info", cmdstatName([]any{"INFO", "stats"}))
	assert.Equal(t, "memory|usage", cmdstatName([]any{"memory", "usage", "k"}))
	assert.Equal(t, "client|setinfo", cmdstatName([]any{"CLIENT", "SETINFO", "lib-name", "go-redis"}))
	assert.Equal(t, "llen", cmdstatName([]any{"llen", "asynq:{q}:pending"}))
	assert.Equal(t, "?", cmdstatName(nil))
}

func TestParseScanLog(t *testing.T) {
	t.Parallel()
	log := `{"level":"info","ts":1,"msg":"scanner started","interval":3}
{"level":"info","ts":2,"msg":"scanned","integration_type":"16","due":0,"enqueued":0,"duration":0.5}
{"level":"info","ts":5,"msg":"scanned","integration_type":"16","due":7,"enqueued":6,"duration":0.25}
{"level":"info","ts":6,"msg":"token lifetimes unreadable; \"scanned\" is not this","due":99}
not json "scanned"
`
	s := parseScanLog(log)
	assert.Equal(t, scanLog{Passes: 2, Due: 7, Enqueued: 6, Seconds: 0.75}, s)
	assert.Equal(t, scanLog{Passes: 1, Due: 7, Enqueued: 6, Seconds: 0.25}, s.sub(scanLog{Passes: 1, Seconds: 0.5}))
}

func TestHelpDefault(t *testing.T) {
	t.Parallel()
	help := "environment:\n  SCAN_INTERVAL             1m\n      time between scans\n  FULL_SCAN_INTERVAL        10m\n  PROVIDERS_FILE            (none: type 16 is ajio)\n"
	d, ok := helpDefault(help, "FULL_SCAN_INTERVAL")
	assert.True(t, ok)
	assert.Equal(t, "10m", d)
	d, ok = helpDefault(help, "PROVIDERS_FILE")
	assert.True(t, ok)
	assert.Equal(t, "(none: type 16 is ajio)", d)
	_, ok = helpDefault(help, "CENSUS_INTERVAL")
	assert.False(t, ok)
	_, ok = helpDefault(help, "SCAN")
	assert.False(t, ok, "a whole name only")
}

func TestSplice(t *testing.T) {
	t.Parallel()
	doc := "# Benchmarks\n\n## Headlines\n\n| # | figure |\n|---|---|\n| 8 | lapses |\n| 9 | old rows |\n| 9 | old cmds |\n\n" +
		"## 8. x\n\ntext\n\n<!-- costs:begin -->\n## 9. old\n\nold text\n<!-- costs:end -->\n\n## How to run it\n"
	section := "<!-- costs:begin -->\n## 9. new\n\nnew text\n<!-- costs:end -->\n"
	got, err := spliceSection(doc, "costs", section)
	require.NoError(t, err)
	assert.Equal(t, strings.Replace(doc, "## 9. old\n\nold text", "## 9. new\n\nnew text", 1), got)
	again, err := spliceSection(got, "costs", section)
	require.NoError(t, err)
	assert.Equal(t, got, again, "splicing twice changes nothing more")

	rows := spliceRows(got, "| 9 |", []string{"| 9 | rows | 1 |", "| 9 | cmds | 2 |", "| 9 | bytes | 3 |"})
	assert.Contains(t, rows, "| 8 | lapses |\n| 9 | rows | 1 |\n| 9 | cmds | 2 |\n| 9 | bytes | 3 |\n\n## 8. x")
	assert.NotContains(t, rows, "old rows")
	assert.Equal(t, "no rows\n", spliceRows("no rows\n", "| 9 |", []string{"| 9 | x |"}), "a doc without the rows keeps its table")

	_, err = spliceSection("# no markers\n", "costs", section)
	assert.ErrorContains(t, err, "<!-- costs:begin -->")
	_, err = spliceSection(doc+"<!-- costs:begin -->\n", "costs", section)
	assert.Error(t, err, "markers twice")
}

func TestCount(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "1,234,567", count(1234567))
	assert.Equal(t, "-123", count(-123))
	assert.Equal(t, "-1,234", count(-1234))
	assert.Equal(t, "0", count(0))
}

func TestClientPerRefresh(t *testing.T) {
	idle := cmdDelta{Seconds: 10, Total: 100, Lua: 60} // 4 client commands a second
	refresh := cmdDelta{Seconds: 5, Total: 3000, Lua: 2000}
	// (3000 − 2000 − 4 × 5) ÷ 100
	if got := clientPerRefresh(idle, refresh, 100); got != 9.8 {
		t.Fatalf("clientPerRefresh = %v, want 9.8", got)
	}
	if got := clientPerRefresh(idle, refresh, 0); got != 0 {
		t.Fatalf("no refreshes: %v", got)
	}
}
