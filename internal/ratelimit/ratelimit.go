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

// RedisKey is the Redis key of the limiter's state (redis_rate's prefix
// and Key's): a script that takes slots (TakeSlotLua) names it.
func (l *Limiter) RedisKey() string { return "rate:" + l.key }

// TakeSlotLua defines take_slot(key, interval), the limiter's Take as a Lua
// function for another script to take a slot in the same command as its
// own work (internal/backlog ranks a task and takes its slot at once).
// key is RedisKey, interval Interval in seconds; it returns 0 with a slot
// taken, or the microseconds until the next slot frees, taking nothing.
//
// It is redis_rate's allowN (GCRA, on the Redis server's clock, the state
// a float of seconds since 2017-01-01) for one event with the Limit New
// makes (rate 1, burst 1, period Interval), written out: the slot is free
// when the stored theoretical arrival time is not in the future, and
// taking it moves that time one interval on. Both take from the same key
// and interleave (TestTakeSlotSharesTheLimiter).
const TakeSlotLua = `
local function take_slot(key, interval)
  local t = redis.call('TIME')
  local now = (t[1] - 1483228800) + (t[2] / 1000000)
  local tat = redis.call('GET', key)
  if not tat then
    tat = now
  else
    tat = tonumber(tat)
  end
  tat = math.max(tat, now)
  local diff = now - tat
  if diff < 0 then
    return math.max(1, math.ceil(-diff * 1000000))
  end
  local new_tat = tat + interval
  redis.call('SET', key, new_tat, 'EX', math.ceil(new_tat - now))
  return 0
end
`

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
