// Package worker assembles a refresher worker once: the marketplaces
// of the providers file (client, circuit breaker, fleet-wide rate limit),
// the connection lease, the refresh handler with its scheduling of the next
// refresh and its failure notifications (webhooks), and the asynq server
// that runs it (weighted queues, retry delay, IsFailure, drain). cmd/refresher,
// the demo and the e2e harness all build it here, so they run the same
// refresher and differ only in their engines (store, Redis), their providers
// and their settings.
package worker

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/ratelimit"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/writegate"
)

// Engines are what the refresher runs on.
type Engines struct {
	Store refresh.Store
	Redis redis.UniversalClient
	Log   *zap.Logger
	// Observer hears of every attempt (metrics.Refresher); when it is also
	// a provider.StatusObserver it hears of every marketplace answer, a
	// writegate.Observer of the database's write health, a
	// refresh.KeptObserver of the outbox. Nil: no one does.
	Observer refresh.Observer
}

// WriteProber is a store that can check, touching no row, that the database
// takes writes (mysql.Store.ProbeWrite). A store that is one gets a write
// gate (internal/writegate): no marketplace calls while writes fail.
type WriteProber interface {
	ProbeWrite(ctx context.Context) error
}

// Settings of a refresher: production's come from its environment
// (internal/startup); the demo and the tests give test-sized intervals.
type Settings struct {
	Queue string // the asynq queue's name
	// QueueShards is how many scan queues are served (task.ServerQueues)
	// and scheduled into (0: 1).
	QueueShards int
	Concurrency int           // workers
	TaskTimeout time.Duration // deadline of one attempt of the tasks the refresher schedules
	// RetryBaseDelay and RetryMaxDelay shape refresh.RetryDelay.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// RetryCheck is how often due retries and scheduled refreshes are
	// moved back to the queue (asynq's DelayedTaskCheckInterval).
	RetryCheck time.Duration
	// TaskCheck is how often an idle worker looks for a task (asynq's
	// TaskCheckInterval; default 200ms).
	TaskCheck time.Duration
	// DrainTimeout is how long Shutdown waits for in-flight refreshes.
	DrainTimeout time.Duration
	// Breaker is each marketplace's circuit breaker (OnChange is set here).
	Breaker breaker.Config
	// SaveRetryFor is refresh.Config.SaveRetryFor (0: its default).
	SaveRetryFor time.Duration
	// OutboxKey is the AES-256 key (32 bytes) that seals the
	// durable outbox of tokens whose write the database refused; nil keeps
	// them in the process's memory only (internal/refresh keep.go).
	OutboxKey []byte
	// FingerprintKey is the key of the credentials'
	// fingerprints a permanent failure records (token.Fingerprinter); nil:
	// the legacy unkeyed digest. The store compares them with its own copy
	// (mysql.Options.FingerprintKey).
	FingerprintKey []byte
	// ProbeInterval is how often a closed write gate probes the database
	// (0: writegate.DefaultProbeInterval).
	ProbeInterval time.Duration
	// Unscheduled leaves every refresh to the scan: no wake-up is
	// scheduled when a token is stored. Production never sets it; tests do
	// when a settled queue must mean no task at all.
	Unscheduled bool
	// Webhooks are the failure notifications (off without endpoints).
	Webhooks Webhooks
	// Getenv reads the client_secret_env of providers entries.
	Getenv func(string) string
}

// Webhooks are the failure notifications' settings (off without
// endpoints).
type Webhooks struct {
	Endpoints []webhook.Endpoint
	// Secret is the signing key (webhook.ParseSecret reads its forms).
	Secret []byte
	// Events are the events sent (nil: webhook.Events).
	Events      []string
	Concurrency int           // deliveries at once
	Timeout     time.Duration // deadline of one delivery POST
	MaxRetry    int           // retries of one delivery before it is archived
	// RetryBase and RetryMax shape the deliveries' backoff (0: webhook's
	// defaults).
	RetryBase, RetryMax time.Duration
}

// Option names an option of New that can be wrong.
type Option string

// The options New's errors name.
const (
	OptionProviders     Option = "providers"
	OptionOutboxKey     Option = "outbox key"
	OptionWebhookSecret Option = "webhook secret"
)

// OptionError is a start-up error of New naming the option that is wrong.
// It names no environment variable: cmd/refresher tells which setting gave
// the option (internal/startup).
type OptionError struct {
	Option Option
	Err    error
}

func (e *OptionError) Error() string { return "invalid " + string(e.Option) + ": " + e.Err.Error() }

func (e *OptionError) Unwrap() error { return e.Err }

// Worker is the assembled refresher worker: start it with Start, stop it with
// Shutdown.
type Worker struct {
	// Handler is the refresh handler.
	Handler *refresh.Handler
	// Marketplaces are the handler's, keyed by integration type.
	Marketplaces map[string]refresh.Marketplace

	server   *asynq.Server
	config   asynq.Config
	mux      *asynq.ServeMux
	hooks    *asynq.Server
	deliver  *webhook.Deliverer
	notifier refresh.Notifier
	sched    refresh.Scheduler
	log      *zap.Logger
	settings Settings
	// Gate is the database's write health (nil when the store cannot
	// probe): /readyz reports it.
	Gate *writegate.Gate
	// Outbox is the durable outbox (nil without OutboxKey).
	Outbox *outbox.Redis
	// Backlogs are the rate-limited marketplaces' backlogs, by integration
	// type: the metrics and the API's summary forecast them.
	Backlogs []backlog.Named

	stop    context.CancelFunc
	stopped chan struct{}
}

// New assembles the refresher over its engines for the given providers
// entries. Its errors name the option: an *OptionError of the providers (a
// client it cannot build), the outbox key or the webhook secret; nothing
// is started yet.
func New(eng Engines, entries []registry.Entry, s Settings) (*Worker, error) {
	if s.TaskCheck <= 0 {
		s.TaskCheck = 200 * time.Millisecond
	}
	log := eng.Log
	status, _ := eng.Observer.(provider.StatusObserver)
	markets, err := Marketplaces(entries, provider.NewHTTPClient(s.Concurrency), status, eng.Redis, s.Queue, s.Breaker, s.Getenv, log)
	if err != nil {
		return nil, &OptionError{Option: OptionProviders, Err: err}
	}
	r := &Worker{Marketplaces: markets, log: log, settings: s}
	for _, it := range slices.Sorted(maps.Keys(markets)) {
		if l, ok := markets[it].Backlog.(*backlog.List); ok {
			r.Backlogs = append(r.Backlogs, backlog.Named{IntegrationType: it, Provider: markets[it].Kind, List: l})
		}
	}
	rcfg := refresh.Config{SaveRetryFor: s.SaveRetryFor, Fingerprint: token.NewFingerprinter(s.FingerprintKey)}
	if prober, ok := eng.Store.(WriteProber); ok {
		gobs, _ := eng.Observer.(writegate.Observer)
		r.Gate = writegate.New(prober.ProbeWrite, s.ProbeInterval, log.Named("database"), gobs)
		rcfg.Gate = r.Gate
	}
	if s.OutboxKey != nil {
		r.Outbox, err = outbox.NewRedis(eng.Redis, s.Queue, s.OutboxKey)
		if err != nil {
			return nil, &OptionError{Option: OptionOutboxKey, Err: err}
		}
		rcfg.Outbox = r.Outbox
	} else {
		rcfg.Sealed = outbox.NewSealed(eng.Redis, s.Queue)
	}
	if !s.Unscheduled {
		// Each stored token's next refresh is scheduled on its own clock;
		// the scan is the backstop.
		r.sched = task.NewShardedQueue(eng.Redis, s.Queue, s.QueueShards, s.TaskTimeout)
		rcfg.Scheduler = r.sched
	}
	if w := s.Webhooks; len(w.Endpoints) > 0 {
		r.deliver, err = webhook.NewDeliverer(w.Endpoints, w.Secret, w.Timeout, log)
		if err != nil {
			return nil, &OptionError{Option: OptionWebhookSecret, Err: err}
		}
		r.hooks = webhook.NewServer(eng.Redis, s.Queue, webhook.ServerConfig{
			Concurrency: w.Concurrency, RetryBase: w.RetryBase, RetryMax: w.RetryMax,
			CheckInterval: s.RetryCheck, ShutdownTimeout: s.DrainTimeout,
		}, log)
		r.notifier = webhook.NewNotifier(eng.Redis, s.Queue, w.Endpoints, webhook.NotifierConfig{
			Events: w.Events, MaxRetry: w.MaxRetry,
		}, log)
		rcfg.Notifier = r.notifier
	}
	r.Handler = refresh.New(eng.Store, lease.New(eng.Redis, s.Queue, 0), markets, rcfg, log, eng.Observer)
	r.config = asynq.Config{
		Concurrency: s.Concurrency,
		// On-demand refreshes (a service just got a 401) overtake any
		// backlog of scanned ones, at one Redis round trip per take.
		Queues:                   task.ServerQueues(s.Queue, s.QueueShards),
		RetryDelayFunc:           refresh.RetryDelay(s.RetryBaseDelay, s.RetryMaxDelay),
		IsFailure:                refresh.IsFailure, // breaker open or no rate slot: wait, spend no retry
		ShutdownTimeout:          s.DrainTimeout,
		DelayedTaskCheckInterval: s.RetryCheck,
		TaskCheckInterval:        s.TaskCheck,
		Logger:                   logging.Asynq{L: log.Named("asynq").Sugar()},
		LogLevel:                 asynq.WarnLevel,
	}
	r.server = asynq.NewServerFromRedisClient(eng.Redis, r.config)
	r.mux = asynq.NewServeMux()
	r.mux.Handle(task.TypeRefresh, r.Handler)
	r.mux.Handle(task.TypeWake, r.Handler)
	return r, nil
}

// Use adds middleware around every task the refresher handles (the demo
// watches which connections are in flight); call it before Start.
func (r *Worker) Use(mw ...asynq.MiddlewareFunc) { r.mux.Use(mw...) }

// Start starts the write gate's probe and the keeper of kept tokens, stores
// what a previous process left in the durable outbox, then starts the
// webhook deliveries (when configured) and the refresh workers.
func (r *Worker) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.stopped = cancel, make(chan struct{})
	if r.Outbox == nil {
		r.log.Info("tokens whose write the database refuses are kept in this process's memory only (no outbox key), and lost if the process is killed (SIGKILL, OOM)")
		r.Handler.Replay(ctx) // says so if other replicas sealed tokens it cannot open
	} else {
		r.log.Info("tokens whose write the database refuses are kept sealed in Redis (the outbox)", zap.String("outbox", r.Outbox.Key()))
		if left := r.Handler.Replay(ctx); left > 0 {
			r.log.Warn("kept tokens in the outbox could not be stored yet; no calls are made for their connections until they are",
				zap.Int("kept_tokens", left))
		}
	}
	go func() {
		defer close(r.stopped)
		if r.Gate != nil {
			go r.Gate.Run(ctx)
		}
		r.Handler.Keep(ctx)
	}()
	if r.hooks != nil {
		if err := r.hooks.Start(webhook.Mux(r.deliver)); err != nil {
			return fmt.Errorf("webhook deliveries: %w", err)
		}
		r.log.Info("webhooks enabled", zap.Int("endpoints", len(r.settings.Webhooks.Endpoints)),
			zap.Strings("events", r.settings.Webhooks.Events), zap.String("queue", webhook.Queue(r.settings.Queue)))
	}
	if err := r.server.Start(r.mux); err != nil {
		if r.hooks != nil {
			r.hooks.Shutdown()
		}
		r.stopKeeping()
		return fmt.Errorf("refresh workers: %w", err)
	}
	return nil
}

func (r *Worker) stopKeeping() {
	if r.stop != nil {
		r.stop()
		<-r.stopped
	}
}

// Shutdown drains the refresh workers (in-flight refreshes get DrainTimeout,
// the rest go back to the queue), waits up to writes for a token obtained
// meanwhile to be stored or kept (its write outlives the task's
// cancellation) and, until DrainTimeout has passed since Shutdown began,
// for the tokens kept in memory to be stored (the keeper goes on storing
// while the database heals), then drains the webhook deliveries, so an
// event queued while draining still gets its chance. What is still
// unstored then is said: the connection ids of tokens lost with the
// process's memory (an error), and how many the durable outbox keeps for
// any replica. It reports whether every token in hand was stored or is in
// the durable outbox.
func (r *Worker) Shutdown(writes time.Duration) bool {
	deadline := time.Now().Add(r.settings.DrainTimeout)
	r.server.Shutdown()
	ok := r.Handler.Wait(writes)
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 0)+5*time.Second)
	defer cancel()
	for {
		inMemory, _, _ := r.Handler.Unstored(ctx)
		if len(inMemory) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.stopKeeping()
	inMemory, durable, err := r.Handler.Unstored(ctx)
	if len(inMemory) > 0 {
		ok = false
		r.log.Error("stopped with tokens in hand that the database never took; they were kept in memory (no outbox key) and are lost: a connection whose refresh token rotated needs the seller to authorize again",
			zap.Int64s("connection_ids", inMemory))
	}
	if err != nil {
		r.log.Warn("could not count the durable outbox at shutdown", zap.Error(err))
	} else if durable > 0 {
		r.log.Warn("tokens kept in the durable outbox at shutdown: any refresher replica stores them when the database takes writes",
			zap.Int("kept_tokens", durable))
	}
	if r.hooks != nil {
		r.hooks.Shutdown()
	}
	return ok
}

// Marketplaces builds the handler's marketplaces from the configured
// entries, keyed by integration type: each with its client (sharing
// httpClient), its rate limit shared in Redis by every replica working
// queue (when the entry sets rate_limit_per_second), and its own circuit
// breaker (per process; see package breaker for why).
func Marketplaces(entries []registry.Entry, httpClient *http.Client, obs provider.StatusObserver, rdb redis.UniversalClient, queue string,
	bc breaker.Config, getenv func(string) string, log *zap.Logger) (map[string]refresh.Marketplace, error) {
	out := make(map[string]refresh.Marketplace, len(entries))
	for _, e := range entries {
		client, err := registry.Build(e, provider.Observed(httpClient, e.Kind, obs), getenv)
		if err != nil {
			return nil, err
		}
		m := refresh.Marketplace{Target: e.Target(), Client: client, CallTimeout: time.Duration(e.Timeout),
			IgnoresRefreshToken: e.IgnoresRefreshToken()}
		if l := ratelimit.New(rdb, ratelimit.Key(queue, e.IntegrationType), e.RateLimitPerSecond); l != nil {
			m.Limiter = l
			// More due work than the rate serves at once is served
			// earliest expiry first: the slots that free while a worker
			// waits in place (RateWait) go to the head of the backlog. The
			// window holds no more than that, so the last place in it
			// still gets its slot before its wait ends: a head put back
			// for its wait would leave slots unused while it is away.
			m.Backlog = backlog.New(rdb, queue, e.IntegrationType, backlog.Config{
				Interval: l.Interval(),
				Window:   max(1, int(refresh.DefaultRateWait/l.Interval())),
				Horizon:  time.Duration(e.RefreshBefore),
			})
		}
		cfg := bc
		blog := log.With(zap.String("provider", e.Kind), zap.String("integration_type", e.IntegrationType))
		cfg.OnChange = func(from, to breaker.State) {
			switch to {
			case breaker.Open:
				blog.Warn("circuit breaker open: no calls to this marketplace until the cool-off ends; tasks wait without spending retries",
					zap.String("from", from.String()), zap.Duration("cooldown", cfg.Cooldown))
			case breaker.HalfOpen:
				blog.Info("circuit breaker half-open: probing the marketplace")
			case breaker.Closed:
				blog.Info("circuit breaker closed: the marketplace answers again")
			}
		}
		m.Breaker = breaker.New(cfg)
		out[e.IntegrationType] = m
	}
	return out, nil
}

// Assembly is what a refresher was built with, free of intervals and
// sizes: two wirings of the same providers compare equal when they run the
// same refresher.
type Assembly struct {
	Queues         map[string]int
	StrictPriority bool
	// IsFailure is whether asynq's IsFailure is refresh.IsFailure (a
	// deferred attempt spends no retry); RetryDelay whether a retry delay
	// is set.
	IsFailure, RetryDelay bool
	// TaskTypes are the task types the refresher handles.
	TaskTypes []string
	// Scheduled is whether each stored token's next refresh is scheduled;
	// Webhooks whether failures are notified.
	Scheduled, Webhooks bool
	// WriteGate is whether calls are held back while the database refuses
	// writes; DurableOutbox whether tokens kept meanwhile are sealed in
	// Redis (OUTBOX_KEY) rather than held in memory.
	WriteGate, DurableOutbox bool
	// Marketplaces are keyed by integration type.
	Marketplaces map[string]MarketplaceAssembly
}

// MarketplaceAssembly is one marketplace as assembled.
type MarketplaceAssembly struct {
	Kind                     string
	RefreshBefore            time.Duration
	Client, Breaker, Limiter bool
}

// Assembly reports what r was built with.
func (r *Worker) Assembly() Assembly {
	a := Assembly{
		Queues: r.config.Queues, StrictPriority: r.config.StrictPriority,
		IsFailure: r.config.IsFailure != nil &&
			reflect.ValueOf(r.config.IsFailure).Pointer() == reflect.ValueOf(refresh.IsFailure).Pointer(),
		RetryDelay: r.config.RetryDelayFunc != nil,
		TaskTypes:  []string{task.TypeRefresh, task.TypeWake},
		Scheduled:  r.sched != nil,
		Webhooks:   r.notifier != nil,
		WriteGate:  r.Gate != nil, DurableOutbox: r.Outbox != nil,
	}
	a.TaskTypes = slices.DeleteFunc(a.TaskTypes, func(typ string) bool {
		h, pattern := r.mux.Handler(asynq.NewTask(typ, nil))
		return h == nil || pattern != typ
	})
	a.Marketplaces = make(map[string]MarketplaceAssembly, len(r.Marketplaces))
	for it, m := range r.Marketplaces {
		a.Marketplaces[it] = MarketplaceAssembly{Kind: m.Kind, RefreshBefore: m.RefreshBefore,
			Client: m.Client != nil, Breaker: m.Breaker != nil, Limiter: m.Limiter != nil}
	}
	return a
}
