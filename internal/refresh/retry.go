package refresh

import (
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/token"
)

// RetryDelay returns asynq's retry policy for transient failures: capped
// exponential backoff with full jitter (first retry within base), and a
// marketplace's Retry-After honoured when it asks for longer.
func RetryDelay(base, maxDelay time.Duration) asynq.RetryDelayFunc {
	if base <= 0 {
		base = time.Second
	}
	if maxDelay < base {
		maxDelay = base
	}
	return func(n int, err error, _ *asynq.Task) time.Duration {
		ceiling := maxDelay
		if n < 40 {
			if d := base << n; d > 0 && d < maxDelay {
				ceiling = d
			}
		}
		// Full jitter spreads a fleet's retries after an outage, so the
		// marketplace is not hit by all of them at the same instant.
		d := time.Duration(rand.Int64N(int64(ceiling))) + 1
		if ra, ok := token.RetryAfter(err); ok && ra > d {
			// Asked-for delays are honoured but not beyond an hour: a
			// misbehaving header must not freeze a connection.
			d = min(ra, time.Hour) + time.Duration(rand.Int64N(int64(time.Second)))
		}
		return d
	}
}
