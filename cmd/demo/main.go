// Command demo runs the whole token refresher in one process with nothing
// installed but Go: an embedded MySQL-compatible engine and an in-process
// Redis, the marketplace sandbox, the scanner, the refresher and a dashboard
// (asynqmon at /monitoring), with demo connections and a live progress line.
// Setting WMS_DB_DSN, IE_DB_DSN and REDIS_URL runs it on real servers instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/eshopbox/token-refresher/internal/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// serverSettings are the settings that, all three set, replace the embedded
// engines with real servers.
var serverSettings = []string{"WMS_DB_DSN", "IE_DB_DSN", "REDIS_URL"}

// run is the demo command; tune, when set, adjusts the configuration last
// (tests use it to watch the dials).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, tune func(*demo.Config)) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "", "dashboard listen address (DEMO_ADDR; default "+demo.DefaultAddr+", or a free port when that is taken)")
	runFor := fs.Duration("for", 0, "stop after this long, as Ctrl-C would (0: run until Ctrl-C)")
	plain := fs.Bool("plain", false, "print plain progress lines even on a terminal")
	logFile := fs.String("log-file", "", "where the components' JSON logs go (default: a new file in the temp directory)")
	secondWave := fs.Duration("second-wave", demo.DefaultTiming().SecondWave, "when the second wave of connections comes due")
	latency := fs.Duration("latency", 300*time.Millisecond, "sandbox marketplace latency per call, so refreshes can be watched")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "demo: unexpected arguments:", strings.Join(fs.Args(), " "))
		return 2
	}

	timing := demo.DefaultTiming()
	timing.SecondWave = *secondWave
	cfg := demo.Config{
		Out:            stdout,
		TTY:            !*plain && isTerminal(stdout) && getenv("TERM") != "dumb",
		Addr:           *addr,
		Timing:         timing,
		SandboxLatency: *latency,
		Queue:          getenv("REFRESH_QUEUE"),
	}
	if cfg.Addr == "" {
		cfg.Addr = getenv("DEMO_ADDR")
	}
	if cfg.Addr == "" {
		cfg.Addr, cfg.AddrFallback = demo.DefaultAddr, true
	}

	var set, unset []string
	for _, name := range serverSettings {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		} else {
			unset = append(unset, name)
		}
	}
	switch {
	case len(unset) == 0:
		cfg.Servers = &demo.Servers{WMSDSN: getenv("WMS_DB_DSN"), IEDSN: getenv("IE_DB_DSN"), RedisURL: getenv("REDIS_URL")}
	case len(set) > 0:
		// A REDIS_URL left in the shell by another project must not make
		// the demo half-real; say what was ignored.
		fmt.Fprintf(stdout, "demo: %s set but %s not: using the embedded engines (set all three to use real servers)\n\n",
			strings.Join(set, ", "), strings.Join(unset, ", "))
	}

	logs, name, err := openLog(*logFile)
	if err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	defer logs.Close()
	cfg.Logs, cfg.LogsName = logs, name

	if *runFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *runFor)
		defer cancel()
	}
	if tune != nil {
		tune(&cfg)
	}
	if _, err := demo.Run(ctx, cfg); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		return 1
	}
	return 0
}

func openLog(path string) (*os.File, string, error) {
	if path == "" {
		f, err := os.CreateTemp("", "token-refresher-demo-*.log")
		if err != nil {
			return nil, "", fmt.Errorf("log file: %w", err)
		}
		return f, f.Name(), nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("log file: %w", err)
	}
	return f, path, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
