package fault

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// TestMarketplaceMisbehaving — pass condition: with 500s, 429s with
// Retry-After, answers slower than the call timeout and hangs making up 1%,
// 10% and 50% of the calls, every due connection is refreshed once the
// marketplace recovers, and the marketplace never sees more calls in a
// second than the provider's rate_limit_per_second, although two refresher
// replicas call it.
func TestMarketplaceMisbehaving(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{0.01, 0.10, 0.50} {
		t.Run(fmt.Sprintf("%g%% faults", rate*100), func(t *testing.T) {
			t.Parallel()
			const limit, n = 20, 200
			s := newSystem(t, kind{IntegrationType: "16", Kind: "ajio", Timeout: time.Second, RatePerSecond: limit})
			users := s.conns(1, n, "16")
			s.market.setFaults(mix(rate, 1))
			r1 := s.startRefresher()
			r2 := s.startRefresher()
			sc := s.startScanner()

			// Misbehaving for long enough to go through every connection
			// once at the limit (200 calls at 20/s).
			eventually(t, 60*time.Second, "a call for every connection", func() bool { return len(s.market.calls()) == n })
			during := s.market.stats()
			refreshedDuring := s.refreshed(users)
			s.market.setFaults(sandbox.Faults{})
			recovered := time.Now()
			eventually(t, 90*time.Second, "every connection to be refreshed after the marketplace recovers", func() bool {
				return s.refreshed(users) == n
			})
			heal := time.Since(recovered)
			s.requireTokens(users)
			st := s.market.stats()
			assert.LessOrEqual(t, st.PeakPerSecond, limit, "calls in one wall-clock second never exceed the limit")
			for _, p := range []*proc{r1, r2, sc} {
				assert.True(t, p.running(), "%s keeps running", p.name)
			}
			opened := r1.count("circuit breaker open") + r2.count("circuit breaker open")
			figure(t, "fault_rate=%g connections=%d calls=%d faulted=%d issued=%d refreshed_during_faults=%d heal_after_recovery=%s peak_per_second=%d peak_in_any_1s_window=%d limit=%d breaker_opened=%d",
				rate, n, st.Calls, during.Faulted, st.Issued, refreshedDuring, heal.Round(100*time.Millisecond),
				st.PeakPerSecond, st.PeakInAnySecond, limit, opened)
		})
	}
}
