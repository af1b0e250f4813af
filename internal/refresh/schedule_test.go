package refresh_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestOwnClockOnlyWhereTheLifetimeMovesTheRefreshPoint: a stored token is
// scheduled (a wake-up and a lifetime record) only when its lifetime moves
// its refresh point, and the handler reads a recorded lifetime only where
// one can exist: never for a marketplace whose every token lives at least
// three times refresh_before (Ajio's fixed 30 minutes under 10).
func TestOwnClockOnlyWhereTheLifetimeMovesTheRefreshPoint(t *testing.T) {
	t.Parallel()
	const before = 10 * time.Minute
	issues := func(lifetime time.Duration) func(context.Context, token.Connection) (token.Token, error) {
		return func(context.Context, token.Connection) (token.Token, error) {
			return token.Token{AccessToken: "AT", ExpiresAt: now.Add(lifetime)}, nil
		}
	}
	for _, tc := range []struct {
		name      string
		fixed     time.Duration // token.Target.Lifetime
		expiresIn time.Duration // the stored token's
		recorded  time.Duration // its recorded lifetime (0: none)
		issued    time.Duration // the new token's lifetime
		wantCalls int64
		wantReads int
		wantLife  time.Duration // of the one Schedule expected (0: none)
	}{
		{name: "ajio, 30m fixed: no read, no schedule", fixed: 30 * time.Minute, expiresIn: time.Minute, issued: 30 * time.Minute,
			wantCalls: 1},
		{name: "oauth, the answer says 30m: read, no schedule", expiresIn: time.Minute, issued: 30 * time.Minute,
			wantCalls: 1, wantReads: 1},
		{name: "oauth, the answer says 6m: read, scheduled", expiresIn: time.Minute, issued: 6 * time.Minute,
			wantCalls: 1, wantReads: 1, wantLife: 6 * time.Minute},
		{name: "oauth, a recorded 6m lifetime not due yet: no call", expiresIn: 5 * time.Minute, recorded: 6 * time.Minute,
			issued: 6 * time.Minute, wantReads: 1},
		{name: "a fixed lifetime under three times refresh_before is read", fixed: 20 * time.Minute, expiresIn: 5 * time.Minute,
			recorded: 20 * time.Minute, issued: 20 * time.Minute, wantCalls: 1, wantReads: 1, wantLife: 20 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			row := conn(tc.expiresIn)
			sched := &refresh.FakeScheduler{Recorded: map[int64]task.Generation{}}
			if tc.recorded > 0 {
				sched.Recorded[row.ID] = task.Generation{ExpiresAt: *row.ExpiresAt, Lifetime: tc.recorded}
			}
			prov := &refresh.FakeProvider{RefreshFn: issues(tc.issued)}
			h := refresh.New(&refresh.FakeStore{Conn: row}, testenv.Leases(t), map[string]refresh.Marketplace{
				"16": {Target: token.Target{IntegrationType: "16", Kind: "k", RefreshBefore: before, Lifetime: tc.fixed}, Client: prov},
			}, refresh.Config{Scheduler: sched, Now: func() time.Time { return now }}, zap.NewNop(), nil)
			err := h.ProcessTask(context.Background(), newTask(t, task.Payload{ConnectionID: row.ID, IntegrationType: "16", DueExpiry: row.ExpiresAt}))
			require.NoError(t, err)
			assert.Equal(t, tc.wantCalls, prov.Calls.Load(), "marketplace calls")
			scheduled, reads := sched.Calls()
			assert.Equal(t, tc.wantReads, reads, "lifetime reads")
			if tc.wantLife == 0 {
				assert.Empty(t, scheduled, "no wake-up, no lifetime record")
				return
			}
			require.Len(t, scheduled, 1)
			s := scheduled[0]
			assert.Equal(t, tc.wantLife, s.Lifetime)
			exp := now.Add(tc.issued)
			lead := token.Lead(before, tc.wantLife)
			assert.Equal(t, exp, *s.Payload.DueExpiry)
			assert.False(t, s.At.After(exp.Add(-lead)), "never later than the refresh point")
			assert.False(t, s.At.Before(exp.Add(-lead-token.Spread(lead))), "early by the jitter at most")
		})
	}
}
