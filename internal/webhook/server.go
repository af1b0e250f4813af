package webhook

import (
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/logging"
)

// ServerConfig tunes the delivery workers.
type ServerConfig struct {
	// Concurrency is how many deliveries run at once (default 4). They
	// are their own workers: a hanging receiver holds these, never a
	// refresh worker.
	Concurrency int
	// RetryBase and RetryMax shape RetryDelay (defaults 10s and 1h).
	RetryBase, RetryMax time.Duration
	// ShutdownTimeout is how long in-flight deliveries get on shutdown
	// (default 10s); the rest go back to the queue.
	ShutdownTimeout time.Duration
	// CheckInterval is how often due retries are moved back to the queue
	// (default 1s).
	CheckInterval time.Duration
}

// NewServer returns the asynq server of Queue(refreshQueue); start it with
// Start(d).
func NewServer(rdb redis.UniversalClient, refreshQueue string, cfg ServerConfig, log *zap.Logger) *asynq.Server {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	return asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   map[string]int{Queue(refreshQueue): 1},
		RetryDelayFunc:           RetryDelay(cfg.RetryBase, cfg.RetryMax),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.CheckInterval,
		Logger:                   logging.Asynq{L: log.Named("asynq.webhook").Sugar()},
		LogLevel:                 asynq.WarnLevel,
	})
}

// Mux routes delivery tasks to d.
func Mux(d *Deliverer) *asynq.ServeMux {
	mux := asynq.NewServeMux()
	mux.Handle(TypeDeliver, d)
	return mux
}
