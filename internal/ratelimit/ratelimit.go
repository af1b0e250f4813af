// Package ratelimit caps the call rate to one marketplace across every
// refresher replica. The state lives in Redis (GCRA, github.com/go-redis/
// redis_rate, evaluated on the Redis server's clock), so N replicas together
// stay under the rate the providers file gives, however many there are.
package ratelimit

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Limiter is one marketplace's shared rate.
type Limiter struct {
	l     *redis_rate.Limiter
	key   string
	limit redis_rate.Limit
	rate  float64
}

// Headroom is the share by which calls are spaced wider than the configured
// rate. A slot is granted on Redis's clock, but the marketplace counts
// arrivals, which jitter by the time between the grant and the request on
// the wire (scheduling, connection reuse, a loaded host); without headroom
// two calls granted exactly 1/rate apart can arrive closer, and a second at
// the marketplace can hold one call too many.
const Headroom = 0.1

// New returns the limiter of perSecond calls per second under key; every
// process using the same key on the same Redis shares it. The burst is one:
// calls are spaced (1+Headroom)/perSecond apart, so no second holds more
// than perSecond of them even when their arrival jitters. It returns nil
// when perSecond is not positive (no limit).
func New(rdb redis.UniversalClient, key string, perSecond float64) *Limiter {
	if perSecond <= 0 || math.IsInf(perSecond, 0) || math.IsNaN(perSecond) {
		return nil
	}
	return &Limiter{
		l:   redis_rate.NewLimiter(rdb),
		key: key,
		// One event per emission interval: fractional rates (0.5/s) work.
		limit: redis_rate.Limit{Rate: 1, Burst: 1, Period: time.Duration((1 + Headroom) * float64(time.Second) / perSecond)},
		rate:  perSecond,
	}
}

// Key is the Redis key (under redis_rate's "rate:" prefix) of a marketplace
// of the given queue and integration type.
func Key(queue, integrationType string) string {
	return "token-refresher:{" + queue + "}:" + integrationType
}

// PerSecond is the configured rate.
func (l *Limiter) PerSecond() float64 { return l.rate }

// Interval is the time between two granted slots: 1/PerSecond, widened by
// Headroom.
func (l *Limiter) Interval() time.Duration { return l.limit.Period }

// Take takes a slot if one is free now and returns zero; otherwise it takes
// nothing and returns how long until the next slot frees.
func (l *Limiter) Take(ctx context.Context) (time.Duration, error) {
	res, err := l.l.Allow(ctx, l.key, l.limit)
	if err != nil {
		return 0, fmt.Errorf("rate limiter: %w", err)
	}
	if res.Allowed > 0 {
		return 0, nil
	}
	if res.RetryAfter <= 0 {
		return time.Millisecond, nil
	}
	return res.RetryAfter, nil
}
