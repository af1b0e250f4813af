package refresh

import (
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/ratelimit"
	"github.com/eshopbox/token-refresher/internal/registry"
)

// Marketplaces builds the handler's providers from the configured entries,
// keyed by integration type: each with its client (sharing httpClient), its
// rate limit shared in Redis by every replica working queue (when the entry
// sets rate_limit_per_second), and its own circuit breaker (per process; see
// package breaker for why).
func Marketplaces(entries []registry.Entry, httpClient *http.Client, obs provider.StatusObserver, rdb redis.UniversalClient, queue string,
	bc breaker.Config, log *zap.Logger) (map[string]Provider, error) {
	out := make(map[string]Provider, len(entries))
	for _, e := range entries {
		client, err := registry.Build(e, provider.Observed(httpClient, e.Kind, obs))
		if err != nil {
			return nil, err
		}
		p := Provider{Kind: e.Kind, RefreshBefore: e.Before(), Client: client, CallTimeout: time.Duration(e.Timeout)}
		if l := ratelimit.New(rdb, ratelimit.Key(queue, e.IntegrationType), e.RateLimitPerSecond); l != nil {
			p.Limiter = l
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
		p.Breaker = breaker.New(cfg)
		out[e.IntegrationType] = p
	}
	return out, nil
}
