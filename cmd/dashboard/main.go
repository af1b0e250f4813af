// Command dashboard serves asynqmon on its own (its own container in
// docker-compose), with the refresher's formatters and basic auth: the same
// dashboard the refresher embeds at /monitoring, rooted at /.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/dashboard"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/startup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const (
	about = "dashboard serves asynqmon (the refresh queues' tasks, failures and their reasons) behind basic auth,\n" +
		"with the refresher's formatters: the dashboard the refresher embeds at /monitoring, on its own."
	usage = "dashboard (no flags or arguments: it is configured by the environment below)"
)

func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		config.PrintHelp(stdout, config.BinDashboard, about, usage, nil)
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "dashboard: unexpected argument %q: it takes none and is configured by the environment (dashboard --help lists it)\n", args[0])
		return 2
	}
	cfg, err := config.LoadDashboard(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "dashboard:", err)
		return 2
	}
	log, err := logging.NewTo(stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(stderr, "dashboard:", err)
		return 2
	}
	defer log.Sync()
	logging.RouteRedis(log)

	// asynqmon would start on an unreachable Redis and fail every page;
	// fail at start-up instead, with one line naming REDIS_URL.
	rdb, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		fmt.Fprintln(stderr, "dashboard: unsupported REDIS_URL")
		return 2
	}
	err = startup.PingRedis(ctx, rdb, cfg.Redis)
	rdb.Close()
	if err != nil {
		log.Error("cannot start", zap.Error(err))
		return 1
	}

	d, err := dashboard.New(dashboard.Config{User: cfg.User, Password: cfg.Password, ReadOnly: cfg.ReadOnly, Redis: cfg.Redis, RootPath: "/"})
	if err != nil {
		fmt.Fprintln(stderr, "dashboard:", err)
		return 2
	}
	defer d.Close()
	// /healthz and /readyz stay open for probes; everything else is asynqmon.
	mux := ops.NewMux(nil, nil)
	mux.Handle("/", d)
	_, done, err := ops.Serve(ctx, cfg.HTTPAddr, mux, log)
	if err != nil {
		log.Error("cannot start: HTTP_ADDR", zap.Error(err))
		return 1
	}
	log.Info("dashboard started", zap.Bool("read_only", cfg.ReadOnly))
	select {
	case <-ctx.Done():
		<-done
	case err := <-done:
		if err != nil {
			log.Error("HTTP server stopped", zap.Error(err))
			return 1
		}
	}
	return 0
}
