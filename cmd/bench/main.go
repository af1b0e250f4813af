// Command bench measures the product against its ceilings on this machine
// (real MariaDB, Redis, sandbox marketplace and product binaries) and writes
// the report, docs/benchmarks.md in `make bench`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/eshopbox/token-refresher/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	out := fs.String("out", "", "write the report (Markdown) to this file; it always goes to stdout too")
	splice := fs.String("splice", "", "rewrite the costs figure's section (between <!-- costs:begin --> and <!-- costs:end -->)\n"+
		"and its Headlines rows in this report of a whole run (make bench-costs: docs/benchmarks.md)")
	fs.StringVar(&cfg.BinDir, "bin", "bin", "folder holding the scanner and refresher binaries (make build)")
	fs.StringVar(&cfg.MySQLDSN, "mysql", envOr(getenv, "BENCH_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/"),
		"server-level DSN allowed to create and drop databases (BENCH_MYSQL_DSN)")
	fs.StringVar(&cfg.RedisAddr, "redis", envOr(getenv, "BENCH_REDIS_ADDR", "127.0.0.1:6379"), "Redis host:port (BENCH_REDIS_ADDR)")
	fs.BoolVar(&cfg.Quick, "quick", getenv("BENCH_QUICK") != "" && getenv("BENCH_QUICK") != "0",
		"smoke run: tiny fleets, one run per figure (BENCH_QUICK=1)")
	fs.BoolVar(&cfg.Million, "million", false, "add N = 1,000,000 to the scan figures (several minutes more)")
	fs.IntVar(&cfg.Runs, "runs", 0, "runs per figure (default 3, quick 1)")
	only := fs.String("only", "", "comma-separated figures to run ("+strings.Join(bench.Figures, ",")+"); default all but "+
		strings.Join(bench.OptIn, ",")+", which only -only runs (make bench-capacity)")
	fs.IntVar(&cfg.CapacityN, "capacity-n", 0, "connections of the capacity figure's simulation (default 1,000,000, quick 6,000)")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the scan + enqueue figures to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "bench: unexpected arguments:", fs.Args())
		return 2
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if *splice != "" && len(cfg.Only) > 0 && !slices.Contains(cfg.Only, "costs") {
		fmt.Fprintln(stderr, "bench: -splice needs the costs figure, which -only leaves out")
		return 2
	}
	cfg.Log = stderr
	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	md := rep.Markdown()
	fmt.Fprint(stdout, md)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
			fmt.Fprintln(stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(stderr, "bench: wrote", *out)
	}
	if *splice != "" {
		doc, err := os.ReadFile(*splice)
		if err == nil {
			var spliced string
			if spliced, err = rep.Splice(string(doc)); err == nil {
				err = os.WriteFile(*splice, []byte(spliced), 0o644)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "bench: -splice:", err)
			return 1
		}
		fmt.Fprintln(stderr, "bench: rewrote the costs section of", *splice)
	}
	return 0
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
