package main

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/dashboard"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/redisconn"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/worker"
)

var (
	_ api.Store      = (*mysql.Store)(nil)
	_ api.Queue      = (*task.Queue)(nil)
	_ api.Census     = (*census.Census)(nil)
	_ census.Store   = (*mysql.Store)(nil)
	_ census.Archive = (*task.Queue)(nil)
)

// serveHTTP serves /healthz, /readyz and /metrics on HTTP_ADDR, plus the
// dashboard at /monitoring when DASHBOARD_USER is set and the API at /v1/
// when API_TOKEN is set. It stops when ctx ends; the returned func releases
// the dashboard's Redis connections.
func serveHTTP(ctx context.Context, cfg startup.Refresher, store *mysql.Store, r *worker.Worker, rdb redis.UniversalClient,
	queue *task.Queue, reg *prometheus.Registry, log *zap.Logger) (func(), error) {
	gate := r.Gate
	checks := []ops.Check{
		{Name: "mysql", Fn: store.Ping},
		{Name: "redis", Fn: func(ctx context.Context) error { return redisconn.Ready(ctx, rdb) }},
	}
	if gate != nil {
		// Not ready while the database refuses writes: no marketplace
		// calls are made then, and the answer says why.
		checks = append(checks, ops.Check{Name: "mysql writes", Fn: func(context.Context) error { return gate.Err() }, Explain: true})
	}
	mux := ops.NewMux(reg, checks)
	closeAll := func() {}

	if cfg.DashboardUser != "" {
		d, err := dashboard.New(dashboard.Config{
			User: cfg.DashboardUser, Password: cfg.DashboardPassword, ReadOnly: cfg.DashboardReadOnly, Redis: cfg.Redis,
		})
		if err != nil {
			return nil, fmt.Errorf("DASHBOARD_USER: %w", err)
		}
		mux.Handle(dashboard.Path, d)
		mux.Handle(dashboard.Path+"/", d)
		closeAll = func() { d.Close() }
		log.Info("dashboard enabled", zap.String("path", dashboard.Path), zap.Bool("read_only", cfg.DashboardReadOnly))
	}

	if cfg.APIToken != "" {
		targets := registry.Targets(cfg.Providers)
		a, err := api.New(api.Config{Token: cfg.APIToken, Targets: targets, Cooldown: cfg.Cooldown, Backlogs: r.Backlogs},
			store, queue, census.New(store, queue, targets), log)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("API_TOKEN: %w", err)
		}
		mux.Handle("/v1/", a)
		log.Info("on-demand API enabled", zap.String("path", "/v1/"))
	}

	_, _, err := ops.Serve(ctx, cfg.HTTPAddr, mux, log)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("HTTP_ADDR: %w", err)
	}
	return closeAll, nil
}
