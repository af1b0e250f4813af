package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/go-sql-driver/mysql"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestQuickRun runs the bench program in quick mode against the real
// MariaDB, Redis and freshly built product binaries: every figure is
// produced, and the run leaves no database or queue behind. It asserts what
// the bench did, never how fast.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs every figure once")
	}
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// The same flags as make build, so the build cache it filled is used.
	build := exec.Command(goBin, "build", "-trimpath", "-o", bin+string(filepath.Separator), "../scanner", "../refresher")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the product binaries: %s", out)

	report := filepath.Join(t.TempDir(), "benchmarks.md")
	// A report of a whole run whose costs section -splice rewrites.
	whole := filepath.Join(t.TempDir(), "whole.md")
	require.NoError(t, os.WriteFile(whole, []byte("# Benchmarks\n\n| # | figure |\n|---|---|\n| 8 | lapses |\n| 9 | stale |\n\n"+
		"<!-- costs:begin -->\nrun make bench-costs\n<!-- costs:end -->\n\n## How to run it\n"), 0o644))
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	env := map[string]string{
		"BENCH_QUICK":      "1",
		"BENCH_MYSQL_DSN":  testenv.MySQLDSN(),
		"BENCH_REDIS_ADDR": testenv.RedisAddr(),
	}
	code := run(ctx, []string{"-bin", bin, "-out", report, "-splice", whole}, func(k string) string { return env[k] }, &stdout, &stderr)
	require.Equal(t, 0, code, "bench failed: %s", stderr.String())

	md, err := os.ReadFile(report)
	require.NoError(t, err)
	assert.Equal(t, stdout.String(), string(md), "the report goes to stdout and to -out")
	for _, want := range []string{
		"**Quick smoke run**",
		"## Machine", "| MariaDB |", "| Redis |",
		"## Headlines",
		"## 1. Scan + enqueue", "## 2. End-to-end refresh", "**composed ceiling**", "one single-row UPDATE by primary key", "Where the rest goes",
		"## 3. Latency-bound", "## 4. The naive floor", "## 5. Freshness", "## 6. Memory", "## 7. Under a 429-heavy marketplace",
		"no limiter configured", "peak ≤ rate_limit_per_second",
		"## 8. Freshness under a backlog", "**product** (earliest expiry first)", "FIFO (queue order)",
		"<!-- costs:begin -->\n## 9. Costs", "| 9 | Redis commands per refresh sent by clients", "`Rows_read`", "`evalsha`",
		"`asynq:{token_refresh}:processed`", "<!-- costs:end -->",
	} {
		assert.Contains(t, string(md), want)
	}
	assert.NotContains(t, string(md), "NaN")
	assert.Regexp(t, `(?m)^BENCH-COSTS idle_db_rows_per_s=\d+ full_pass_rows=\d+ amortized_db_rows_per_s=\S+ redis_client_cmds_per_refresh_nolimit=[0-9.]+ redis_cmds_per_refresh_nolimit=[0-9.]+ redis_bytes_per_conn_nolimit=-?\d+ redis_client_cmds_per_refresh_limit=[0-9.]+ redis_cmds_per_refresh_limit=[0-9.]+ redis_bytes_per_conn_limit=-?\d+ n=\d+`, stderr.String(),
		"one machine-readable line of figure 9")

	// -splice put the same section, and the Headlines rows, into the
	// whole run's report.
	spliced, err := os.ReadFile(whole)
	require.NoError(t, err)
	i, j := strings.Index(string(md), "<!-- costs:begin -->"), strings.Index(string(md), "<!-- costs:end -->")
	require.True(t, i >= 0 && j > i)
	assert.Contains(t, string(spliced), string(md)[i:j])
	assert.NotContains(t, string(spliced), "run make bench-costs")
	assert.NotContains(t, string(spliced), "| 9 | stale |")
	assert.Contains(t, string(spliced), "| 8 | lapses |\n| 9 | DB rows read per second of idle scanning")
	assert.True(t, strings.HasSuffix(string(spliced), "<!-- costs:end -->\n\n## How to run it\n"))

	// The run's databases and queues are gone.
	m := regexp.MustCompile(`databases (bench_([0-9a-f]+)_wms)`).FindStringSubmatch(stderr.String())
	require.NotNil(t, m, "the log names the run's databases: %s", stderr.String())
	db, err := sqlx.Open("mysql", testenv.MySQLDSN())
	require.NoError(t, err)
	defer db.Close()
	var left []string
	require.NoError(t, db.Select(&left, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", "bench\\_"+m[2]+"\\_%"))
	assert.Empty(t, left, "the run's databases are dropped")
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer rdb.Close()
	for _, pattern := range []string{"asynq:{bench_" + m[2] + "*", "token-refresher:{bench_" + m[2] + "*", "token_refresher:{bench_" + m[2] + "*"} {
		keys, err := rdb.Keys(context.Background(), pattern).Result()
		require.NoError(t, err)
		assert.Empty(t, keys, "the run's queues, leases and lifetime records are deleted")
	}
	queues, err := rdb.SMembers(context.Background(), "asynq:queues").Result()
	require.NoError(t, err)
	for _, q := range queues {
		assert.False(t, strings.HasPrefix(q, "bench_"+m[2]), "queue %s left registered", q)
	}
}

// TestQuickCapacity runs figure 10 alone in quick mode (about a minute):
// both phases on private servers, the prediction beside the measurement,
// the worked examples, and no lapse.
func TestQuickCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and simulates a fleet")
	}
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goBin, "build", "-trimpath", "-o", bin+string(filepath.Separator), "../scanner", "../refresher")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build the product binaries: %s", out)

	report := filepath.Join(t.TempDir(), "benchmarks-capacity.md")
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := map[string]string{"BENCH_MYSQL_DSN": testenv.MySQLDSN(), "BENCH_REDIS_ADDR": testenv.RedisAddr()}
	code := run(ctx, []string{"-bin", bin, "-quick", "-only", "capacity", "-out", report}, func(k string) string { return env[k] }, &stdout, &stderr)
	require.Equal(t, 0, code, "bench failed: %s", stderr.String())
	md, err := os.ReadFile(report)
	require.NoError(t, err)
	for _, want := range []string{
		"# Capacity: a simulated fleet beside the model's prediction", "**Quick smoke run**", "## Machine", "## Settings",
		"## Phase 1: unit costs", "## Phase 2: the prediction beside the simulation", "| figure | predicted | measured | error |",
		"| refreshes/s |", "| Redis commands executed/s |", "| Redis CPU (cores) |", "| MariaDB rows read/s, scanner |",
		"| refresher CPU (cores, 2 replicas) |", "| peak pending tasks |", "## Worked examples from the model",
		"| Ajio, token_ttl 30m, refresh_before 10m | 10,000,000 |", "| OAuth, token_ttl 1h, refresh_before 10m | 1,000,000 |",
		"When one Redis stops being enough",
	} {
		assert.Contains(t, string(md), want)
	}
	assert.NotContains(t, string(md), "## 1. Scan", "figure 10 alone renders its own report")
	assert.NotContains(t, string(md), "NaN")
	assert.Contains(t, string(md), "| lapses (rows expired and not renewed, most at one sample) | 0 | 0 | |", "the quick fleet is refreshed in time")
	assert.Regexp(t, `(?m)^BENCH-CAPACITY n=6000 refreshes_per_s=[0-9.]+/[0-9.]+ `, stderr.String())
}

// TestNoTestingLinked: the bench is a program; the helpers it shares with
// the tests (internal/sharedenv, internal/procs) leave the test framework out of it.
func TestNoTestingLinked(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	require.NoError(t, err)
	assert.NotContains(t, strings.Split(string(out), "\n"), "testing", "bin/bench links the testing package")
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	none := func(string) string { return "" }
	assert.Equal(t, 2, run(context.Background(), []string{"extra"}, none, &stdout, &stderr))
	assert.Equal(t, 2, run(context.Background(), []string{"-nope"}, none, &stdout, &stderr))
	stderr.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"-only", "scan,speed"}, none, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `unknown figure "speed"`)
	stderr.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"-only", "scan", "-splice", "x.md"}, none, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-splice needs the costs figure")
}
