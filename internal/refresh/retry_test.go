package refresh

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/token"
)

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	const base, capDelay = time.Second, time.Minute
	f := RetryDelay(base, capDelay)
	plain := token.Transient("ajio answered HTTP 500")
	unusable := token.Unusable("ajio answered HTTP 200 JSON that is not a token response")
	withRA := func(d time.Duration) error { e := token.Transient("ajio is rate limiting"); e.RetryAfter = d; return e }

	for _, tc := range []struct {
		name     string
		n        int
		err      error
		min, max time.Duration
	}{
		{"first retry within base", 0, plain, 1, base},
		{"second within 2×base", 1, plain, 1, 2 * base},
		{"fifth within 16×base", 4, plain, 1, 16 * base},
		{"capped", 10, plain, 1, capDelay},
		{"far past the cap stays capped", 1 << 20, plain, 1, capDelay},
		{"Retry-After longer than the backoff is honoured", 0, withRA(30 * time.Second), 30 * time.Second, 31 * time.Second},
		{"Retry-After past the cap is honoured too", 10, withRA(3 * time.Minute), 3 * time.Minute, 3*time.Minute + time.Second},
		{"Retry-After is bounded", 0, withRA(48 * time.Hour), MaxRetryAfter, MaxRetryAfter + time.Second},
		{"wrapped Retry-After", 0, fmt.Errorf("x: %w", withRA(5*time.Second)), 5 * time.Second, 6 * time.Second},
		{"a live token caps the backoff at a quarter of its lifetime left", 10, &expiringError{err: plain, left: 20 * time.Second}, 1, 5 * time.Second},
		{"but not below base/4", 10, &expiringError{err: plain, left: 100 * time.Millisecond}, 1, base / 4},
		{"a long lifetime left leaves the cap", 10, &expiringError{err: plain, left: time.Hour}, 1, capDelay},
		{"Retry-After wins over the lifetime cap", 0, &expiringError{err: withRA(3 * time.Second), left: 4 * time.Second}, 3 * time.Second, 4 * time.Second},
		{"unusable: first retry in [base/2, base]", 0, unusable, base / 2, base + 1},
		{"unusable: keeps doubling past the cap", 10, unusable, 512 * base, 1024*base + 1},
		{"unusable: grows to hours", 20, unusable, UnusableMaxDelay / 2, UnusableMaxDelay + 1},
		{"unusable: never past UnusableMaxDelay", 1 << 20, unusable, UnusableMaxDelay / 2, UnusableMaxDelay + 1},
		{"unusable: a live token still caps it", 20, &expiringError{err: unusable, left: 40 * time.Minute}, 5 * time.Minute, 10*time.Minute + 1},
		{"deferred: its own time plus a little", 7, &DeferredError{Reason: "open", After: 4 * time.Second}, 4 * time.Second, 5*time.Second + 100*time.Millisecond},
		{"deferred for nothing still waits a moment", 0, &DeferredError{Reason: "x"}, time.Millisecond, 102 * time.Millisecond},
		{"deferred long: the jitter stays bounded", 0, &DeferredError{Reason: "86 calls ahead", After: 86 * time.Second}, 86 * time.Second, 86*time.Second + MaxDeferJitter + 100*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var lo, hi time.Duration = 1<<63 - 1, 0
			for range 2000 {
				d := f(tc.n, tc.err, asynq.NewTask("x", nil))
				lo, hi = min(lo, d), max(hi, d)
				if d < tc.min || d > tc.max {
					t.Fatalf("delay %s outside [%s, %s]", d, tc.min, tc.max)
				}
			}
			if tc.max-tc.min >= time.Second {
				// Full jitter: the draws cover the range, not one point.
				assert.Less(t, lo, tc.min+(tc.max-tc.min)/4, "jitter reaches the low end")
				assert.Greater(t, hi, tc.max-(tc.max-tc.min)/4, "jitter reaches the high end")
			}
		})
	}
}

func TestRetryDelayDefaults(t *testing.T) {
	t.Parallel()
	f := RetryDelay(0, 0)
	for range 100 {
		d := f(5, errors.New("x"), nil)
		assert.Positive(t, d)
		assert.LessOrEqual(t, d, time.Second)
	}
}

func TestIsFailure(t *testing.T) {
	t.Parallel()
	assert.True(t, IsFailure(token.Transient("down")))
	assert.True(t, IsFailure(errors.New("x")))
	assert.False(t, IsFailure(&DeferredError{Reason: "open"}))
	assert.False(t, IsFailure(fmt.Errorf("wrapped: %w", &DeferredError{Reason: "open"})))
}

func TestJitterIsEarlyAndBounded(t *testing.T) {
	t.Parallel()
	for _, lead := range []time.Duration{0, time.Second, 80 * time.Second, 10 * time.Minute} {
		ceiling := token.Spread(lead)
		var hi time.Duration
		for range 2000 {
			j := Jitter(lead)
			assert.GreaterOrEqual(t, j, time.Duration(0))
			assert.LessOrEqual(t, j, ceiling, "lead %s", lead)
			hi = max(hi, j)
		}
		if ceiling >= time.Second {
			assert.Greater(t, hi, ceiling/2, "lead %s: the jitter spreads", lead)
		}
	}
}
