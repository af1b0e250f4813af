package refresh

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/token"
)

// MaxRetryAfter bounds how long a marketplace's Retry-After is honoured: a
// misbehaving header must not freeze a connection.
const MaxRetryAfter = time.Hour

// UnusableMaxDelay caps the backoff of an answer the product cannot place
// (token.ClassUnusable): it keeps doubling past RETRY_MAX_DELAY up to
// this, so a marketplace that changed its answer's shape is asked about
// once every few hours, not every minute.
const UnusableMaxDelay = 6 * time.Hour

// MaxDeferJitter bounds the jitter added to a deferred attempt's wait.
const MaxDeferJitter = time.Second

// RetryLeftDivisor: a retry of a connection whose token is still live waits
// at most 1/RetryLeftDivisor of the time the token has left (not its
// lifetime: token.LeadDivisor is that share).
const RetryLeftDivisor = 4

// RetryDelay returns asynq's retry policy. Transient failures back off
// exponentially with full jitter: retry n (from 0) waits a uniform time in
// (0, min(base·2ⁿ, maxDelay)], so the first retry comes within base; while
// the stored token is live, the ceiling is also at most a quarter of its
// remaining lifetime (never under base/4). A marketplace's Retry-After is
// honoured when it asks for longer (up to MaxRetryAfter). An unusable
// answer (token.ClassUnusable) backs off the same way but its ceiling
// keeps doubling up to UnusableMaxDelay (hours), with equal jitter (at
// least half the ceiling). A deferred attempt (breaker open, no rate slot) comes back
// after the time it named, with a little jitter (a quarter of it, at most
// MaxDeferJitter, plus up to 100ms) so a crowd of deferred tasks does not
// return at the same instant.
func RetryDelay(base, maxDelay time.Duration) asynq.RetryDelayFunc {
	if base <= 0 {
		base = time.Second
	}
	if maxDelay < base {
		maxDelay = base
	}
	return func(n int, err error, _ *asynq.Task) time.Duration {
		var deferred *DeferredError
		if errors.As(err, &deferred) {
			// The jitter is bounded: a task put back until its turn in
			// a marketplace's backlog must be back by then (its entry
			// waits backlog.Grace for it, no longer).
			after := max(deferred.After, time.Millisecond)
			return after + time.Duration(rand.Int64N(int64(min(after/4, MaxDeferJitter)+100*time.Millisecond)))
		}
		unusable := token.IsUnusable(err)
		limit := maxDelay
		if unusable {
			limit = max(maxDelay, UnusableMaxDelay)
		}
		ceiling := limit
		if n >= 0 && n < 40 {
			if d := base << n; d > 0 && d < limit {
				ceiling = d
			}
		}
		// While the stored token is live, a retry never waits more than a
		// share of the lifetime it has left (but not less than base/4, so
		// the last moments are not a hot loop): a token near expiry gets
		// its retries while they can still help.
		var exp *expiringError
		if errors.As(err, &exp) {
			ceiling = min(ceiling, max(exp.left/RetryLeftDivisor, base/4))
		}
		// Full jitter spreads a fleet's retries after an outage, so the
		// marketplace is not hit by all of them at the same instant.
		d := time.Duration(rand.Int64N(int64(ceiling))) + 1
		if unusable {
			// Equal jitter: never less than half the ceiling, so the
			// retries of an unplaceable answer never bunch up.
			d = ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1)) + 1
		}
		if ra, ok := token.RetryAfter(err); ok && ra > d {
			d = min(ra, MaxRetryAfter) + time.Duration(rand.Int64N(int64(time.Second)))
		}
		return d
	}
}
