// Package backlog orders the due work waiting for one marketplace's rate
// limit by deadline: the token that expires first is called first
// (earliest deadline first), fleet-wide, whatever order the tasks reach the
// workers in.
//
// Why here and not in the queue: asynq's queues are FIFO, its priorities are
// a handful of weighted queues, and a task that waits for a rate slot or a
// retry goes back behind everything queued after it. Sorting at enqueue time
// (the scanner does) orders one scan's batch only. The one place every path
// passes through (a scan, a retry, a scheduled refresh, an on-demand one,
// any replica) is the handler's wait for a rate slot, so that is where the
// order is kept: each task waiting for a slot is placed in a Redis sorted
// set of its marketplace, scored by its token's expiry, and only the head
// of that list (Window tasks) may take slots; the rest are put back until
// about when their turn comes, and find their place again then.
//
// A token that has already lapsed still gets its turn, but behind every live
// token that can still be saved: serving a dead token first would let a live
// one die too, and under overload plain EDF does exactly that, one token
// after another. A lapsed entry is scored as if its deadline were Horizon
// (the marketplace's refresh_before) after it was found lapsed: it is
// behind everything due now and ahead of work that falls due later, so it
// cannot be starved.
//
// Keys (all under the queue's hash tag, so they sit in one Redis Cluster
// slot): …:backlog:{type}:live (sorted set, member connection id, score
// the token's expiry in Unix milliseconds), …:lapsed (score: the deadline a
// lapsed entry is given), …:seen (score: when an entry is dropped unless its
// task comes back; a task killed while it waits, or one that finds its
// connection refreshed meanwhile, does not stay in the list).
package backlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// List is one marketplace's backlog.
type List struct {
	rdb      redis.UniversalClient
	keys     []string
	interval time.Duration
	window   int
	horizon  time.Duration
}

// Config of a list.
type Config struct {
	// Interval is the time between two calls the rate limit grants (a Go
	// duration: 1/rate, with the limiter's headroom).
	Interval time.Duration
	// Window is how many tasks at the head may wait for a slot in place
	// (at least 1): the slots that free while a worker waits RateWait.
	Window int
	// Horizon is the deadline given to a lapsed token, from when it was
	// found lapsed: the marketplace's refresh_before.
	Horizon time.Duration
}

// Key is the prefix of the keys of the backlog of integrationType in the
// queue named queue.
func Key(queue, integrationType string) string {
	return "token-refresher:{" + queue + "}:backlog:" + integrationType
}

// New returns the backlog of integrationType in the queue named queue.
func New(rdb redis.UniversalClient, queue, integrationType string, cfg Config) *List {
	k := Key(queue, integrationType)
	return &List{
		rdb:      rdb,
		keys:     []string{k + ":live", k + ":lapsed", k + ":seen"},
		interval: max(cfg.Interval, time.Millisecond),
		window:   max(cfg.Window, 1),
		horizon:  max(cfg.Horizon, time.Second),
	}
}

// Place is a task's place in the backlog.
type Place struct {
	// Rank is the number of entries ahead (0: the head).
	Rank int
	// Len is the number of entries.
	Len int
	// Window is the list's Config.Window.
	Window int
	// After is zero when the task may wait for a slot now (Rank <
	// Window); otherwise about when its turn comes: put it back for that
	// long.
	After time.Duration
}

// Grace is how long past the time a task was told to come back its entry
// stays in the list: an entry whose task never returns (killed, or found
// its connection refreshed) stops holding its place after that. It covers
// what delays a returning task: the retry's jitter (at most a second,
// refresh.MaxDeferJitter), asynq's move of due retries back to the queue
// (RETRY_CHECK_INTERVAL, 1s by default) and the wait for a worker. A task
// back later than that finds its place again; one that took a deadline
// when found lapsed gets a new one.
const Grace = 10 * time.Second

// place registers a connection and returns its rank. Arguments: member,
// expiry (Unix ms; 0 when there is no token), now (ms), horizon (ms),
// window, interval (ms), grace (ms), wait (ms: how long an entry inside the
// window may wait in place before it must come back). Returns {rank, len,
// after ms}.
var place = redis.NewScript(`
local live, lapsed, seen = KEYS[1], KEYS[2], KEYS[3]
local m = ARGV[1]
local expiry, now = tonumber(ARGV[2]), tonumber(ARGV[3])
local horizon, window = tonumber(ARGV[4]), tonumber(ARGV[5])
local interval, grace, wait = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

-- entries whose task did not come back in time
local gone = redis.call('ZRANGEBYSCORE', seen, '-inf', now, 'LIMIT', 0, 100)
for _, g in ipairs(gone) do
  redis.call('ZREM', live, g)
  redis.call('ZREM', lapsed, g)
  redis.call('ZREM', seen, g)
end
-- live entries that lapsed while they waited go behind the live ones
local dead = redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. now, 'LIMIT', 0, 100)
for _, d in ipairs(dead) do
  redis.call('ZREM', live, d)
  redis.call('ZADD', lapsed, 'NX', now + horizon, d)
end

local score, rank
if expiry > now then
  -- the row, just read, is the truth: a live token is ranked by its expiry
  redis.call('ZREM', lapsed, m)
  redis.call('ZADD', live, expiry, m)
  score = expiry
  rank = redis.call('ZRANK', live, m) + redis.call('ZCOUNT', lapsed, '-inf', '(' .. score)
else
  -- a lapsed token keeps the deadline it was given when first found lapsed
  redis.call('ZREM', live, m)
  local ls = redis.call('ZSCORE', lapsed, m)
  if ls then
    score = tonumber(ls)
  else
    score = now + horizon
    redis.call('ZADD', lapsed, score, m)
  end
  -- every live entry with a deadline up to its own is ahead of it
  rank = redis.call('ZRANK', lapsed, m) + redis.call('ZCOUNT', live, '-inf', score)
end
local n = redis.call('ZCARD', live) + redis.call('ZCARD', lapsed)
local after = 0
if rank >= window then
  after = (rank - window + 1) * interval
end
redis.call('ZADD', seen, now + math.max(after, wait) + grace, m)
return {rank, n, after}
`)

// Place puts the connection in the backlog (or finds it there) and tells
// its place. expiry is the stored token's expiry (nil: no token); wait is
// how long the task may wait for a slot in place before it comes back.
// Errors are Redis's.
func (l *List) Place(ctx context.Context, connectionID int64, expiry *time.Time, now time.Time, wait time.Duration) (Place, error) {
	var exp int64
	if expiry != nil && !expiry.IsZero() {
		exp = expiry.UnixMilli()
	}
	res, err := place.Run(ctx, l.rdb, l.keys, strconv.FormatInt(connectionID, 10), exp, now.UnixMilli(),
		l.horizon.Milliseconds(), l.window, l.interval.Milliseconds(), Grace.Milliseconds(), wait.Milliseconds()).Int64Slice()
	if err != nil {
		return Place{}, fmt.Errorf("backlog: %w", err)
	}
	if len(res) != 3 {
		return Place{}, fmt.Errorf("backlog: unexpected answer %v", res)
	}
	return Place{Rank: int(res[0]), Len: int(res[1]), Window: l.window, After: time.Duration(res[2]) * time.Millisecond}, nil
}

// leave removes ARGV[1] from the three sets (KEYS: live, lapsed, seen).
var leave = redis.NewScript(`
for _, k in ipairs(KEYS) do
  redis.call('ZREM', k, ARGV[1])
end
return 0`)

// Leave takes the connection out of the backlog: its task took a slot.
// One command (a script of three ZREMs, atomic), where a pipeline of the
// three was three.
func (l *List) Leave(ctx context.Context, connectionID int64) error {
	if err := leave.Run(ctx, l.rdb, l.keys, strconv.FormatInt(connectionID, 10)).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("backlog: %w", err)
	}
	return nil
}

// Forecast is what the backlog says about the tokens waiting in it at the
// current pace: the rate limit, serving the list in order.
type Forecast struct {
	// Waiting is how many connections wait for a slot.
	Waiting int `json:"waiting"`
	// Lapsed is how many of them hold a token that has already lapsed.
	Lapsed int `json:"lapsed"`
	// AtRisk is how many live tokens will lapse before their turn comes:
	// the work ahead of them, at the rate limit, takes longer than they
	// have left.
	AtRisk int `json:"at_risk"`
	// LeastSlack is the least time a live token will have left when its
	// turn comes (negative: it lapses first); zero when none waits.
	LeastSlack time.Duration `json:"-"`
}

// Forecast reads the whole list (its cost grows with the backlog, not with
// the fleet) and forecasts it at now. Entries whose task did not come back
// in time are left out.
func (l *List) Forecast(ctx context.Context, now time.Time) (Forecast, error) {
	cmds, err := l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRangeWithScores(ctx, l.keys[0], 0, -1)
		p.ZRangeWithScores(ctx, l.keys[1], 0, -1)
		p.ZRangeByScoreWithScores(ctx, l.keys[2], &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)})
		return nil
	})
	if err != nil {
		return Forecast{}, fmt.Errorf("backlog: %w", err)
	}
	live, lapsed, seen := cmds[0].(*redis.ZSliceCmd).Val(), cmds[1].(*redis.ZSliceCmd).Val(), cmds[2].(*redis.ZSliceCmd).Val()
	return forecast(live, lapsed, seen, now, l.interval), nil
}

// forecast walks the two sorted sets in their merged order (ties: live
// first, as Place ranks them).
func forecast(live, lapsed, gone []redis.Z, now time.Time, interval time.Duration) Forecast {
	skip := make(map[any]bool, len(gone))
	for _, g := range gone {
		skip[g.Member] = true
	}
	f := Forecast{LeastSlack: time.Duration(math.MaxInt64)}
	nowMs := float64(now.UnixMilli())
	rank := 0
	i, j := 0, 0
	for i < len(live) || j < len(lapsed) {
		takeLive := j >= len(lapsed) || (i < len(live) && live[i].Score <= lapsed[j].Score)
		var z redis.Z
		if takeLive {
			z, i = live[i], i+1
		} else {
			z, j = lapsed[j], j+1
		}
		if skip[z.Member] {
			continue
		}
		rank++
		f.Waiting++
		if !takeLive || z.Score <= nowMs {
			f.Lapsed++
			continue
		}
		// Its turn comes after the rank entries ahead of it and itself.
		turn := now.Add(time.Duration(rank) * interval)
		slack := time.Duration(z.Score-float64(turn.UnixMilli())) * time.Millisecond
		f.LeastSlack = min(f.LeastSlack, slack)
		if slack <= 0 {
			f.AtRisk++
		}
	}
	if f.LeastSlack == time.Duration(math.MaxInt64) {
		f.LeastSlack = 0
	}
	return f
}

// Forecaster forecasts a backlog (List does).
type Forecaster interface {
	Forecast(ctx context.Context, now time.Time) (Forecast, error)
}

// Named is a marketplace's backlog with the names reports give it.
type Named struct {
	IntegrationType string
	Provider        string // the providers entry's kind
	List            Forecaster
}

// Status is one marketplace's forecast as the API answers it
// (GET /v1/connections/summary) and tokenctl prints it.
type Status struct {
	IntegrationType string `json:"integration_type"`
	Provider        string `json:"provider"`
	Forecast
	// LeastSlackSeconds is Forecast.LeastSlack in seconds.
	LeastSlackSeconds float64 `json:"least_slack_seconds"`
}

// Statuses forecasts every backlog at now, in the order given. One that
// cannot be read (Redis) is left out, and the first error is returned with
// the others.
func Statuses(ctx context.Context, lists []Named, now time.Time) ([]Status, error) {
	out := make([]Status, 0, len(lists))
	var first error
	for _, n := range lists {
		f, err := n.List.Forecast(ctx, now)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("backlog of integration type %s: %w", n.IntegrationType, err)
			}
			continue
		}
		out = append(out, Status{IntegrationType: n.IntegrationType, Provider: n.Provider, Forecast: f,
			LeastSlackSeconds: f.LeastSlack.Seconds()})
	}
	return out, first
}
