package refresh_test

import (
	"context"
	"fmt"
	"sync"
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

type heard struct {
	mu       sync.Mutex
	outcomes []refresh.Outcome
	reasons  []string
}

func (h *heard) Attempted(_ string, o refresh.Outcome, _, _ time.Duration, _ bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.outcomes = append(h.outcomes, o)
}

func (h *heard) Failed(_ context.Context, _ int64, _, _, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reasons = append(h.reasons, reason)
}

func (*heard) Refreshed(context.Context, int64, string, string) {}

// TestOutcomeIsTheFailuresClass: a failure's outcome (the metric label,
// the log field) is its class, decided once by the provider, and a
// permanent failure reaches the notifier as its reason alone.
func TestOutcomeIsTheFailuresClass(t *testing.T) {
	t.Parallel()
	want := map[token.Class]refresh.Outcome{
		token.ClassPermanent: refresh.Permanent,
		token.ClassTransient: refresh.Transient,
		token.ClassUnusable:  refresh.Unusable,
	}
	require.Len(t, want, len(token.Classes), "every class has its outcome")
	for _, c := range token.Classes {
		assert.Equal(t, want[c], refresh.OutcomeOf(c), "%v", c)
		for _, wrap := range []bool{false, true} {
			h := &heard{}
			store := &refresh.FakeStore{LoadFn: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil }}
			prov := &refresh.FakeProvider{RefreshFn: func(context.Context, token.Connection) (token.Token, error) {
				var err error = token.Fail(c, "ajio said no (HTTP 400)")
				if wrap {
					err = fmt.Errorf("ajio: %w", err)
				}
				return token.Token{}, err
			}}
			hd := refresh.New(store, testenv.Leases(t), map[string]refresh.Marketplace{
				"16": {Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}, Client: prov},
			}, refresh.Config{Notifier: h, Now: func() time.Time { return now }}, zap.NewNop(), h)
			err := hd.ProcessTask(context.Background(), newTask(t, task.Payload{ConnectionID: 11, IntegrationType: "16"}))
			require.Error(t, err)
			assert.Equal(t, c, token.ClassOf(err), "%v, wrapped %v", c, wrap)
			assert.Equal(t, []refresh.Outcome{want[c]}, h.outcomes, "%v, wrapped %v", c, wrap)
			if c == token.ClassPermanent {
				assert.Equal(t, []string{"ajio said no (HTTP 400)"}, h.reasons, "wrapped %v", wrap)
			} else {
				assert.Empty(t, h.reasons, "%v", c)
			}
		}
	}
}
