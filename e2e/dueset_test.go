package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/dueset"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestScansFollowTheWindow: with the optional indexes and no full pass
// after the first, the scans alone (no wake-up is scheduled) find every
// token generation as it enters refresh_before, and a connection created
// mid-run, and no token lapses. 30-second Ajio tokens under a 10-second
// window, scans every second, for three generations each.
func TestScansFollowTheWindow(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, `
providers:
  - integration_type: "16"
    kind: ajio
    base_url: SANDBOX_URL
    token_ttl: 30s
    refresh_before: 10s
`)})
	b.env.CreateIndexes(t)
	rec := &attempts{}
	b.obs = rec
	const n = 12
	users := map[int64]string{}
	add := func(id int64) {
		u, p := seller(fmt.Sprint(id))
		users[id] = u
		b.env.Insert(t, testenv.Row{ID: id, InputFields: creds(u, p)}) // NULL: never generated
	}
	for id := int64(1); id <= n; id++ {
		add(id)
	}
	b.startRefresher(t)

	tr := dueset.New(b.store, registry.Targets(b.providers), dueset.Options{FullInterval: time.Hour})
	scanner := scan.New(tr, b.queue, scan.Config{Targets: registry.Targets(b.providers), Cooldown: time.Hour}, b.log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	var fulls, passes int
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if _, err := scanner.RunOnce(ctx); err == nil {
				passes++
				if tr.Stats().Full {
					fulls++
				}
			}
			time.Sleep(time.Second)
		}
	}()

	testenv.Eventually(t, 30*time.Second, "the first generation stored", func() bool {
		return b.sandbox.Calls(users[1]) >= 1
	})
	add(100) // created while the scans run
	const generations = 3
	testenv.Eventually(t, 3*time.Minute, "three generations of every connection", func() bool {
		for _, u := range users {
			if b.sandbox.Calls(u) < generations {
				return false
			}
		}
		return true
	})
	cancel()
	<-done

	all, _ := rec.snapshot()
	var refreshed, lapsed int
	for _, a := range all {
		if a.outcome == refresh.Refreshed {
			refreshed++
			if a.hadToken && a.remaining <= 0 {
				lapsed++
			}
		}
	}
	t.Logf("FIGURE scans that follow the window: %d passes (%d full), %d tokens stored, %d lapsed", passes, fulls, refreshed, lapsed)
	assert.Equal(t, 1, fulls, "only the first pass walked the fleet")
	assert.Zero(t, lapsed, "a token lapsed before the scans found its next generation")
	for id, u := range users {
		calls := b.sandbox.Calls(u)
		assert.LessOrEqual(t, calls, generations+1, "connection %d: one call per generation", id)
	}
	require.NotNil(t, b.env.Get(t, 100).ExpiresAt, "the connection created mid-run holds a token")
	assert.Empty(t, b.archived(t))
}
