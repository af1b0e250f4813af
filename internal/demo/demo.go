// Package demo runs the whole token refresher in one process for a newcomer:
// the marketplace sandbox, the scanner, the refresher and a dashboard with
// asynqmon, on an embedded MySQL-compatible engine and an in-process Redis
// (or on real servers), with demo connections of every provider kind in
// Kinds, and a live progress line. cmd/demo turns flags and environment into
// a Config; Run is the whole demo, so tests run it in-process.
package demo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/dashboard"
	"github.com/eshopbox/token-refresher/internal/demo/embedded"
	"github.com/eshopbox/token-refresher/internal/dueset"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/metrics"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// DefaultAddr is where the dashboard listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// Servers are real MySQL and Redis servers to run on instead of the
// embedded engines.
type Servers struct {
	WMSDSN, IEDSN, RedisURL string
}

// Config of a demo run. Zero values take the defaults.
type Config struct {
	// Out receives what the newcomer reads: endpoints, progress, summary.
	Out io.Writer
	// TTY redraws one progress line in place; otherwise a plain line is
	// printed when something changed, at most every PlainEvery (default 5s).
	TTY        bool
	PlainEvery time.Duration
	// Logs receives the components' JSON logs (default: discarded);
	// LogsName is how the header refers to them (a file name).
	Logs     io.Writer
	LogsName string
	// Addr is the dashboard's listen address (default DefaultAddr). With
	// AddrFallback, a taken Addr falls back to a free port, and the header
	// says so.
	Addr         string
	AddrFallback bool
	// Servers, when set, replace the embedded engines.
	Servers *Servers
	// Queue is the asynq queue (default task.DefaultQueue).
	Queue string
	// Timing of the demo's tokens (default DefaultTiming()).
	Timing Timing
	// SandboxLatency delays every marketplace answer, so the refreshes can
	// be watched (default 0).
	SandboxLatency time.Duration
	// Concurrency is the refresher's worker count (default 4).
	Concurrency int
	// Kinds are the provider kinds and their connections (default Kinds()).
	Kinds []Kind
	// Dial, when set, dials every Redis connection of the embedded mode
	// (tests record the addresses the demo dials).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Ready, when set, is called once the demo serves.
	Ready func(Endpoints)
	// Assembled, when set, is told what the demo's refresher was built
	// with (tests compare it with production's).
	Assembled func(worker.Assembly)
}

// Endpoints are where the running demo's parts listen.
type Endpoints struct {
	Dashboard string // http://host:port/
	Sandbox   string // http://host:port
	// WMSDSN and IEDSN are the databases' DSNs (embedded: no password).
	WMSDSN, IEDSN string
	// MySQL and Redis are the embedded servers' host:port ("" on real servers).
	MySQL, Redis string
	// Webhooks is the demo's webhook receiver (docs/webhooks.md).
	Webhooks string
}

func (c *Config) defaults() {
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.PlainEvery <= 0 {
		c.PlainEvery = 5 * time.Second
	}
	if c.Logs == nil {
		c.Logs = io.Discard
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Queue == "" {
		c.Queue = task.DefaultQueue
	}
	if c.Timing == (Timing{}) {
		c.Timing = DefaultTiming()
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 4
	}
	if c.Kinds == nil {
		c.Kinds = Kinds()
	}
}

// drainTimeout bounds the demo refresher's drain, on Ctrl-C or an error:
// in-flight refreshes finish or go back to the queue.
const drainTimeout = time.Minute

// Run runs the demo until ctx ends, then drains the refresher, prints the
// summary and returns the final status.
func Run(ctx context.Context, cfg Config) (Status, error) {
	cfg.defaults()
	if err := cfg.Timing.validate(); err != nil {
		return Status{}, err
	}
	logs := &lockedWriter{w: cfg.Logs}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(logs), zapcore.InfoLevel))
	defer log.Sync()
	// go-redis's own lines (pool dial failures) go to the log file, not
	// over the progress.
	logging.RouteRedis(log)
	start := time.Now()

	// Servers stop when Run returns, after the refresher drained.
	srvCtx, stopServers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServers()

	sb := sandbox.New()
	faults := sandbox.Faults{Latency: cfg.SandboxLatency}
	for _, k := range cfg.Kinds {
		if k.Prepare != nil {
			k.Prepare(sb, &faults, cfg.Timing)
		}
	}
	sb.SetFaults(faults)
	sandboxAddr, _, err := ops.Serve(srvCtx, "127.0.0.1:0", sb.Handler(), log.Named("sandbox"))
	if err != nil {
		return Status{}, fmt.Errorf("sandbox: %w", err)
	}
	ep := Endpoints{Sandbox: "http://" + sandboxAddr.String()}

	entries, conns, err := build(cfg.Kinds, ep.Sandbox, cfg.Timing)
	if err != nil {
		return Status{}, err
	}

	var redisOpt asynq.RedisConnOpt
	var redisAt string // host:port, for messages
	if cfg.Servers == nil {
		my, err := embedded.StartMySQL(logs)
		if err != nil {
			return Status{}, err
		}
		defer my.Close()
		rd, err := embedded.StartRedis()
		if err != nil {
			return Status{}, err
		}
		defer rd.Close()
		ep.MySQL, ep.Redis = my.Addr(), rd.Addr()
		redisAt = rd.Addr()
		ep.WMSDSN, ep.IEDSN = my.DSN(deploy.WMSDatabase), my.DSN(deploy.IEDatabase)
		redisOpt = dialOpt{addr: rd.Addr(), dial: cfg.Dial}
	} else {
		ep.WMSDSN, ep.IEDSN = cfg.Servers.WMSDSN, cfg.Servers.IEDSN
		redisOpt, err = asynq.ParseRedisURI(cfg.Servers.RedisURL)
		if err != nil {
			// The URL may hold a password: never repeat it.
			return Status{}, errors.New("REDIS_URL: not a usable Redis URL (redis://[:password@]host:port/db)")
		}
		if u, err := url.Parse(cfg.Servers.RedisURL); err == nil {
			redisAt = u.Host // host:port, without the password
		}
	}

	if err := prepare(ctx, ep.WMSDSN, ep.IEDSN, conns, start); err != nil {
		return Status{}, err
	}
	store, err := mysql.Open(ctx, ep.WMSDSN, ep.IEDSN, mysql.Options{MaxOpenConns: 8})
	if err != nil {
		return Status{}, err
	}
	defer store.Close()
	ieDSN, err := mysql.ParseDSN(ep.IEDSN, time.UTC)
	if err != nil {
		return Status{}, fmt.Errorf("IE_DB_DSN: %w", err)
	}
	ie, err := sqlx.Open("mysql", ieDSN)
	if err != nil {
		return Status{}, fmt.Errorf("IE_DB_DSN: %w", err)
	}
	defer ie.Close()
	ie.SetMaxOpenConns(2)

	rdb, ok := redisOpt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return Status{}, errors.New("REDIS_URL: unsupported kind of Redis URL")
	}
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return Status{}, fmt.Errorf("REDIS_URL: cannot reach Redis at %s: %w", redisAt, err)
	}
	queue := task.NewQueue(rdb, cfg.Queue, 30*time.Second)
	insp := asynq.NewInspectorFromRedisClient(rdb)

	tr := newTracker(conns, start, time.Now)
	reg := metrics.NewRegistry()
	hooks, err := startReceiver(srvCtx, log)
	if err != nil {
		return Status{}, err
	}
	ep.Webhooks = hooks.url
	// The production refresher (internal/worker), on the demo's engines
	// and data, with demo-sized intervals; the tracker only watches.
	r, err := worker.New(worker.Engines{Store: trackedStore{Store: store, t: tr}, Redis: rdb,
		Log: log.Named("refresher"), Observer: metrics.NewRefresher(reg)}, entries, settings(cfg, hooks.endpoints))
	if err != nil {
		return Status{}, err
	}
	r.Use(tr.middleware)
	if cfg.Assembled != nil {
		cfg.Assembled(r.Assembly())
	}
	if err := r.Start(); err != nil {
		return Status{}, fmt.Errorf("refresher: %w", err)
	}
	drained := false
	defer func() {
		if !drained {
			r.Shutdown(drainTimeout)
		}
	}()

	scanCtx, stopScanner := context.WithCancel(ctx)
	defer stopScanner()
	scanner := scan.New(dueset.New(store, registry.Targets(entries), dueset.Options{Log: log.Named("scanner")}), queue, scan.Config{
		Targets: registry.Targets(entries), Interval: cfg.Timing.ScanInterval, Cooldown: scan.DefaultFailureCooldown,
	}, log.Named("scanner"), scanObservers{metrics.NewScanner(reg), tr})
	var scanning sync.WaitGroup
	scanning.Go(func() { _ = scanner.Run(scanCtx) })

	mon := dashboard.Monitor(redisOpt, dashboard.Path, false)
	defer mon.Close()
	httpMux := ops.NewMux(reg, []ops.Check{
		{Name: "mysql", Fn: store.Ping},
		{Name: "redis", Fn: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	})
	demoPage(httpMux, tr.status)
	// No credentials on the demo's loopback dashboard, so any page the user
	// opens could otherwise pause its queues: state changes only from its
	// own origin (net/http.CrossOriginProtection, as the refresher's).
	httpMux.Handle(dashboard.Path+"/", http.NewCrossOriginProtection().Handler(mon))
	dashAddr, fellBack, err := serveDashboard(srvCtx, cfg.Addr, cfg.AddrFallback, httpMux)
	if err != nil {
		return Status{}, fmt.Errorf("dashboard: cannot listen on %s: %w", cfg.Addr, err)
	}
	ep.Dashboard = "http://" + dashAddr + "/"

	header(cfg, ep, fellBack, conns)
	if cfg.Ready != nil {
		cfg.Ready(ep)
	}

	pr := newPrinter(cfg.Out, cfg.TTY, cfg.PlainEvery)
	pollErrs := map[string]bool{}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	pollOnce := func() {
		if err := tr.poll(ctx, queue, insp, ie); err != nil && ctx.Err() == nil {
			log.Warn("progress: cannot read the queue or the database", zap.Error(err))
			if msg := err.Error(); !pollErrs[msg] {
				pollErrs[msg] = true
				pr.event("progress: cannot read the queue or the database: %v", err)
			}
		}
	}
	for ctx.Err() == nil {
		pollOnce()
		for drained := false; !drained; {
			select {
			case r := <-hooks.got:
				pr.event("%s  %s", clock(time.Since(start)), r.line())
			default:
				drained = true
			}
		}
		pr.update(tr.status(), time.Now())
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}

	// Ctrl-C: no new scans, in-flight refreshes finish (or go back to the
	// queue), then the final account.
	stopScanner()
	scanning.Wait()
	r.Shutdown(drainTimeout) // a token obtained during the drain is still being written
	drained = true
	if err := tr.poll(context.Background(), queue, insp, ie); err != nil {
		log.Warn("summary: cannot read the queue or the database", zap.Error(err))
	}
	final := tr.status()
	pr.summary(final)
	return final, nil
}

// settings are the refresher's settings in the demo: production's, with
// demo-sized intervals, and the demo's webhook receiver.
func settings(cfg Config, hooks []webhook.Endpoint) worker.Settings {
	return worker.Settings{
		Queue: cfg.Queue, Concurrency: cfg.Concurrency, TaskTimeout: 30 * time.Second,
		RetryBaseDelay: time.Second, RetryMaxDelay: 30 * time.Second, RetryCheck: time.Second,
		TaskCheck: 100 * time.Millisecond, DrainTimeout: 5 * time.Second,
		Breaker: breaker.Config{Failures: 5, Cooldown: 10 * time.Second},
		Webhooks: worker.Webhooks{
			Endpoints: hooks, Secret: demoWebhookKey, Concurrency: 2,
		},
		// The durable outbox, as production runs it with OUTBOX_KEY: a
		// key of this run's own (the demo's Redis lives as long as it).
		OutboxKey: demoOutboxKey,
		Getenv:    noEnv,
	}
}

// demoOutboxKey seals the demo's kept tokens: random per run, held by no
// one else.
var demoOutboxKey = func() []byte {
	key := make([]byte, outbox.KeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return key
}()

// build turns the kinds into provider entries and the connections to seed.
func build(kinds []Kind, sandboxURL string, t Timing) ([]registry.Entry, []conn, error) {
	if len(kinds) == 0 {
		return nil, nil, errors.New("no provider kinds")
	}
	var entries []registry.Entry
	var conns []conn
	seen := map[int64]bool{}
	for _, k := range kinds {
		e := k.Entry(sandboxURL, t)
		entries = append(entries, e)
		for _, r := range k.Rows(t) {
			if seen[r.ID] {
				return nil, nil, fmt.Errorf("connection %d is listed twice in the demo's kinds", r.ID)
			}
			seen[r.ID] = true
			conns = append(conns, conn{Row: r, Target: e.Target()})
		}
	}
	return entries, conns, nil
}

func header(cfg Config, ep Endpoints, fellBack bool, conns []conn) {
	w := cfg.Out
	fmt.Fprintln(w, "token-refresher demo: the scanner, the refresher and a marketplace sandbox in one process.")
	fmt.Fprintln(w)
	moved := ""
	if fellBack {
		moved = fmt.Sprintf("   (%s was taken)", cfg.Addr)
	}
	fmt.Fprintf(w, "  dashboard  %s%s\n", ep.Dashboard, moved)
	fmt.Fprintf(w, "  asynqmon   %smonitoring/\n", ep.Dashboard)
	if ep.MySQL != "" {
		fmt.Fprintf(w, "  MySQL      %s   embedded go-mysql-server, user %s, no password, databases %s and %s\n",
			ep.MySQL, embedded.User, deploy.WMSDatabase, deploy.IEDatabase)
		fmt.Fprintf(w, "  Redis      %s   embedded miniredis\n", ep.Redis)
	} else {
		fmt.Fprintln(w, "  MySQL      the servers of WMS_DB_DSN and IE_DB_DSN")
		fmt.Fprintln(w, "  Redis      the server of REDIS_URL")
	}
	fmt.Fprintf(w, "  sandbox    %s   the marketplace stand-in\n", ep.Sandbox)
	if ep.Webhooks != "" {
		fmt.Fprintf(w, "  webhooks   %s   a receiver checking each signature; events show below as they arrive\n", ep.Webhooks)
	}
	if cfg.LogsName != "" {
		fmt.Fprintf(w, "  logs       %s\n", cfg.LogsName)
	}
	fmt.Fprintln(w)

	type count struct{ now, soon, rejected, malformed, total int }
	byKind := map[string]*count{}
	var order []string
	for _, c := range conns {
		key := fmt.Sprintf("%s (integration type %s, tokens live %s, renewed in their last %s)",
			c.Kind, c.IntegrationType, cfg.Timing.TokenTTL, c.RefreshBefore)
		n := byKind[key]
		if n == nil {
			n = &count{}
			byKind[key] = n
			order = append(order, key)
		}
		n.total++
		switch {
		case c.Want == WantRejected:
			n.rejected++
		case c.Want == WantMalformed:
			n.malformed++
		case c.ExpiresAt != nil || c.ExpiresIn == Never || c.ExpiresIn < c.RefreshBefore:
			n.now++
		default:
			n.soon++
		}
	}
	for _, k := range order {
		n := byKind[k]
		fmt.Fprintf(w, "  %d connections of %s:\n    %d due now, %d due in about %s, %d with credentials the marketplace rejects, %d with malformed inputFields\n",
			n.total, k, n.now, n.soon, cfg.Timing.SecondWave, n.rejected, n.malformed)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Progress (Ctrl-C stops the demo and prints a summary):")
}

// serveDashboard listens on addr (or a free port when addr is taken and
// fallback is set) and serves h until ctx ends.
func serveDashboard(ctx context.Context, addr string, fallback bool, h http.Handler) (string, bool, error) {
	ln, err := net.Listen("tcp", addr)
	fellBack := false
	if err != nil && fallback {
		host, _, _ := net.SplitHostPort(addr)
		if host == "" {
			host = "127.0.0.1"
		}
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
		fellBack = true
	}
	if err != nil {
		return "", false, err
	}
	// The page and asynqmon must not be framed by another site.
	srv := ops.NewServer(ops.PageHeaders(h))
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), fellBack, nil
}

// dialOpt connects asynq, asynqmon and the demo to the embedded Redis,
// through dial when set.
type dialOpt struct {
	addr string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ asynq.RedisConnOpt = dialOpt{}

// MakeRedisClient implements asynq.RedisConnOpt.
func (o dialOpt) MakeRedisClient() any {
	return redis.NewClient(&redis.Options{Addr: o.addr, Dialer: o.dial})
}

type scanObservers []scan.Observer

func (s scanObservers) Scanned(r scan.Result, err error) {
	for _, o := range s {
		o.Scanned(r, err)
	}
}

// lockedWriter serialises writes from the demo's loggers (zap and the
// embedded engine's logrus) to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
