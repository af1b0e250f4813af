package e2e

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// attempts records every refresh attempt (refresh.Observer).
type attempts struct {
	mu    sync.Mutex
	all   []attempt
	short int
}

type attempt struct {
	outcome   refresh.Outcome
	remaining time.Duration
	hadToken  bool
}

func (a *attempts) Attempted(_ string, o refresh.Outcome, _, remaining time.Duration, hadToken bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, attempt{o, remaining, hadToken})
}

func (a *attempts) ShortLifetime(string) { a.mu.Lock(); a.short++; a.mu.Unlock() }

func (a *attempts) snapshot() ([]attempt, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attempt(nil), a.all...), a.short
}

// TestTokensOnTheirOwnClock: a marketplace issues 6-second tokens while
// refresh_before is a minute, so every token is inside the window the
// moment it is stored. With the scanner scanning as fast as it can, the
// connection is still called once per token generation: each refresh comes
// from the wake-up scheduled when the token was stored, a third of its
// lifetime (2 s) before expiry (less up to a tenth of it, the jitter),
// never from a scan of a token just stored.
//
// OWN_CLOCK_LIFETIME and OWN_CLOCK_REFRESH_BEFORE (Go durations) run it at
// other scales, e.g. the 4-minute tokens under a 10-minute window
// (about ten minutes).
func TestTokensOnTheirOwnClock(t *testing.T) {
	t.Parallel()
	lifetime, before := 6*time.Second, time.Minute
	if v := os.Getenv("OWN_CLOCK_LIFETIME"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		lifetime = d
	}
	if v := os.Getenv("OWN_CLOCK_REFRESH_BEFORE"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err)
		before = d
	}
	lead := token.Lead(before, lifetime)
	b := setup(t, options{providers: providersYAML(t, `
providers:
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: SANDBOX_URL/oauth/token
    refresh_before: `+before.String()+`
    client_id: `+sandbox.DefaultClientID+`
    client_secret: `+sandbox.DefaultClientSecret+`
    allow_inline_secrets: true # the sandbox's public development secret
`), schedule: true})
	rec := &attempts{}
	b.obs = rec
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true, RotationGrace: time.Minute,
		OAuthExpiresInBy: map[string]int{"short": int(lifetime / time.Second)}})
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: testenv.Str(`{}`),
		RefreshToken: testenv.Str(sandbox.RefreshToken("short")), AccessToken: testenv.Str("old"), ExpiresAt: &expired})
	b.startRefresher(t)

	// The scanner scans back to back the whole time.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	scanner := b.scanner(scan.Config{})
	var ownClock, scans int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			res, err := scanner.RunOnce(ctx)
			if err == nil && len(res) > 0 {
				ownClock += res[0].OwnClock
				scans++
			}
			time.Sleep(max(20*time.Millisecond, lifetime/300))
		}
	}()

	const generations = 4
	testenv.Eventually(t, 10*lifetime+60*time.Second, "four generations refreshed", func() bool {
		return b.sandbox.Calls("short") >= generations+1
	})
	cancel()
	<-done

	// The last call's attempt is recorded when its token is stored, a
	// moment after the sandbox counted the call: read both once they agree
	// (a call whose token is never stored keeps them apart, and fails).
	var all []attempt
	var short, calls int
	storedOf := func(as []attempt) int {
		n := 0
		for _, a := range as {
			if a.outcome == refresh.Refreshed {
				n++
			}
		}
		return n
	}
	testenv.Eventually(t, 30*time.Second, "every call's token stored", func() bool {
		before := b.sandbox.Calls("short")
		all, short = rec.snapshot()
		calls = b.sandbox.Calls("short")
		return before == calls && storedOf(all) == calls
	})
	refreshed := 0
	for _, a := range all {
		switch a.outcome {
		case refresh.Refreshed:
			refreshed++
			if a.hadToken && a.remaining > 0 {
				// Obtained-at is truncated to the second, so a stored
				// expiry may be up to 1 s early; jitter runs it up to
				// a tenth of the lead earlier.
				assert.LessOrEqual(t, a.remaining, lead+token.Spread(lead)+time.Second, "a token is refreshed a third of its lifetime before expiry, not when stored")
			}
		case refresh.NotDue, refresh.Stale:
		default:
			t.Errorf("unexpected outcome %s", a.outcome)
		}
	}
	t.Logf("FIGURE own clock: lifetime %s, refresh_before %s: %d marketplace calls, %d tokens stored (%.2f calls per generation), %d scans (%d rows left to their own clock), %d refresh attempts",
		lifetime, before, calls, refreshed, float64(calls)/float64(max(refreshed, 1)), scans, ownClock, len(all))
	assert.Equal(t, calls, refreshed, "every call stored its token: one call per token generation")
	assert.Greater(t, scans, 2*generations, "the scanner ran many times per generation")
	assert.Positive(t, ownClock, "the scan saw tokens inside refresh_before and left them to their own clock")
	assert.GreaterOrEqual(t, short, generations, "each short token was counted")
	assert.Contains(t, b.logs.String(), "tokens that live shorter than refresh_before")
	require.NotNil(t, b.env.Get(t, 1).ExpiresAt)
}

// TestNormalLifetimeLeftToTheScan: a token whose lifetime leaves
// refresh_before whole (here Ajio's 30 minutes under 10: token.Lead is
// refresh_before) leaves nothing in Redis once stored, no wake-up task and
// no lifetime record, and is refreshed by the scan when it enters
// refresh_before, as before wake-ups existed. In the same run a token that
// lives shorter than token.LeadDivisor × refresh_before (OAuth, 90 s under 1
// minute) keeps both: its lifetime moves its refresh point.
func TestNormalLifetimeLeftToTheScan(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, `
providers:
  - integration_type: "16"
    kind: ajio
    base_url: SANDBOX_URL
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: SANDBOX_URL/oauth/token
    refresh_before: 1m
    client_id: `+sandbox.DefaultClientID+`
    client_secret: `+sandbox.DefaultClientSecret+`
    allow_inline_secrets: true # the sandbox's public development secret
`), schedule: true})
	b.sandbox.SetFaults(sandbox.Faults{OAuthExpiresInBy: map[string]int{"short": 90}})
	ctx := context.Background()
	expired := time.Now().UTC().Add(-time.Hour)
	u, p := seller("1")
	b.env.Insert(t,
		testenv.Row{ID: 1, InputFields: creds(u, p), ExpiresAt: &expired},
		testenv.Row{ID: 2, IntegrationType: "42", InputFields: testenv.Str(`{}`),
			RefreshToken: testenv.Str(sandbox.RefreshToken("short")), ExpiresAt: &expired})
	b.startRefresher(t)
	scanner := b.scanner(scan.Config{})
	scanned := func() map[string]scan.Result {
		res, err := scanner.RunOnce(ctx)
		require.NoError(t, err)
		out := map[string]scan.Result{}
		for _, r := range res {
			out[r.IntegrationType] = r
		}
		return out
	}
	// The expiry is checked against clock readings taken before the call
	// and after the store, so a wall clock stepped in between widens the
	// window instead of failing the test.
	before := time.Now()
	assert.Equal(t, 1, scanned()["16"].Enqueued)
	testenv.Eventually(t, 20*time.Second, "both refreshed and stored", func() bool {
		return b.sandbox.Calls(u) == 1 && b.sandbox.Calls("short") == 1 &&
			b.env.Get(t, 1).AccessToken != nil && b.env.Get(t, 2).AccessToken != nil
	})
	after := time.Now()
	first := b.env.Get(t, 1)
	require.NotNil(t, first.ExpiresAt)
	assert.False(t, first.ExpiresAt.Before(before.Add(30*time.Minute).Truncate(time.Second)), "expiry %s: 30 minutes after the call", first.ExpiresAt)
	assert.False(t, first.ExpiresAt.After(after.Add(30*time.Minute+time.Second)), "expiry %s: 30 minutes after the call", first.ExpiresAt)

	// The short-lived token has its wake-up and its record, the Ajio one
	// neither; nothing else is queued.
	lifetimes := task.LifetimesKey(b.env.Queue)
	testenv.Eventually(t, 10*time.Second, "the short-lived token's next refresh scheduled", func() bool {
		scheduled, err := b.inspector.ListScheduledTasks(b.env.Queue)
		return err == nil && len(scheduled) == 1
	})
	scheduled, err := b.inspector.ListScheduledTasks(b.env.Queue)
	require.NoError(t, err)
	require.Len(t, scheduled, 1)
	short := b.env.Get(t, 2)
	require.NotNil(t, short.ExpiresAt)
	assert.Equal(t, task.WakeID(2, *short.ExpiresAt), scheduled[0].ID)
	fields, err := b.env.Redis.HKeys(ctx, lifetimes).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"2"}, fields, "only the short-lived token's lifetime is recorded")
	info, err := b.inspector.GetQueueInfo(b.env.Queue)
	require.NoError(t, err)
	assert.Equal(t, 1, info.Size, "the wake-up is the queue's only task")

	// Not due yet: the scan leaves it; then, inside refresh_before, the scan
	// finds it and it is refreshed.
	assert.Zero(t, scanned()["16"].Due)
	soon := time.Now().UTC().Add(5 * time.Minute).Truncate(time.Second)
	b.env.IE.MustExec(`UPDATE ie_appinstall_connection SET accessTokenExpiryAt = ? WHERE id = 1`, soon)
	r := scanned()["16"]
	assert.Equal(t, 1, r.Due)
	assert.Equal(t, 1, r.Enqueued)
	testenv.Eventually(t, 20*time.Second, "the Ajio token refreshed by the scan", func() bool {
		return b.sandbox.Calls(u) == 2
	})
	testenv.Eventually(t, 10*time.Second, "its task done", func() bool {
		info, err := b.inspector.GetQueueInfo(b.env.Queue)
		return err == nil && info.Pending == 0 && info.Active == 0 && info.Retry == 0
	})
	again := b.env.Get(t, 1)
	require.NotNil(t, again.ExpiresAt)
	assert.True(t, again.ExpiresAt.After(soon.Add(20*time.Minute)), "a new 30-minute token stored")
	has, err := b.env.Redis.HExists(ctx, lifetimes, "1").Result()
	require.NoError(t, err)
	assert.False(t, has, "no lifetime record for the Ajio token")
	scheduled, err = b.inspector.ListScheduledTasks(b.env.Queue)
	require.NoError(t, err)
	for _, s := range scheduled {
		assert.NotContains(t, s.ID, "wake:1@", "no wake-up for the Ajio token")
	}
}
