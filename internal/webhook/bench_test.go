package webhook_test

import (
	"context"
	"testing"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// BenchmarkReport measures what webhooks add to a refresh on the real
// Redis: Refreshed for a connection that never failed (every successful
// refresh pays it) and Failed for one already notified (every repeated
// failure pays it). Both are one Lua call.
func BenchmarkReport(b *testing.B) {
	env := testenv.New(b)
	eps, err := webhook.ParseURLs("http://127.0.0.1:1/a")
	if err != nil {
		b.Fatal(err)
	}
	n := webhook.NewNotifier(env.Redis, env.Queue, eps, webhook.NotifierConfig{}, zap.NewNop())
	ctx := context.Background()
	b.Run("refreshed, never failed", func(b *testing.B) {
		for i := range b.N {
			n.Refreshed(ctx, int64(i%1000+1), "16", "ajio")
		}
	})
	n.Failed(ctx, 5000, "16", "ajio", "rejected")
	b.Run("failed, already notified", func(b *testing.B) {
		for range b.N {
			n.Failed(ctx, 5000, "16", "ajio", "rejected")
		}
	})
}
