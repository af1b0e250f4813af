package refresh_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newTask(t *testing.T, p task.Payload) *asynq.Task {
	t.Helper()
	b, err := json.Marshal(p)
	require.NoError(t, err)
	return asynq.NewTask(task.TypeRefresh, b)
}

func handler(t testing.TB, store *refresh.FakeStore, prov *refresh.FakeProvider) *refresh.Handler {
	return handlerWith(t, testenv.Leases(t), store, prov)
}

func handlerWith(t testing.TB, leases *lease.Manager, store *refresh.FakeStore, prov *refresh.FakeProvider) *refresh.Handler {
	return refresh.New(store, leases, map[string]refresh.Marketplace{
		"16": {Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}, Client: prov},
	}, refresh.Config{SaveRetryFor: 2 * time.Second, Now: func() time.Time { return now }}, zap.NewNop(), nil)
}

func conn(exp time.Duration) token.Connection {
	e := now.Add(exp)
	return token.Connection{ID: 11, InputFields: []byte(`{}`), ExpiresAt: &e}
}

func good(context.Context, token.Connection) (token.Token, error) {
	return token.Token{AccessToken: "AT", ExpiresAt: now.Add(30 * time.Minute)}, nil
}

func TestHandler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		payload   task.Payload
		load      func(context.Context, int64) (token.Connection, error)
		refresh   func(context.Context, token.Connection) (token.Token, error)
		save      func(context.Context, token.Connection, token.Token) error
		wantCalls int64
		wantSaves int32
		wantErr   string
		skipRetry bool
	}{
		{name: "due: refreshed", load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh: good, wantCalls: 1, wantSaves: 1},
		{name: "refreshed meanwhile: no call", load: func(context.Context, int64) (token.Connection, error) { return conn(25 * time.Minute), nil },
			refresh: good, wantCalls: 0},
		{name: "forced: called although not due", payload: task.Payload{Forced: true, DueExpiry: conn(25 * time.Minute).ExpiresAt},
			load: func(context.Context, int64) (token.Connection, error) { return conn(25 * time.Minute), nil }, refresh: good, wantCalls: 1, wantSaves: 1},
		{name: "forced: a token stored since the request satisfies it, no call", payload: task.Payload{Forced: true, DueExpiry: conn(time.Minute).ExpiresAt},
			load: func(context.Context, int64) (token.Connection, error) { return conn(25 * time.Minute), nil }, refresh: good},
		{name: "forced, never generated: called", payload: task.Payload{Forced: true},
			load: func(context.Context, int64) (token.Connection, error) {
				return token.Connection{ID: 11, InputFields: []byte(`{}`)}, nil
			},
			refresh: good, wantCalls: 1, wantSaves: 1},
		{name: "inactive: done without a call", load: func(context.Context, int64) (token.Connection, error) { return token.Connection{}, token.ErrNotFound },
			refresh: good},
		{name: "database down on load: retried", load: func(context.Context, int64) (token.Connection, error) {
			return token.Connection{}, errors.New("bad connection")
		},
			refresh: good, wantErr: "bad connection"},
		{name: "stale write: newer token kept, done", load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh: good, save: func(context.Context, token.Connection, token.Token) error { return token.ErrStale }, wantCalls: 1, wantSaves: 1},
		{name: "permanent: not retried", load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh: func(context.Context, token.Connection) (token.Token, error) {
				return token.Token{}, token.Permanent("ajio rejected the credentials")
			},
			wantCalls: 1, wantErr: "permanent: ajio rejected the credentials", skipRetry: true},
		{name: "transient: retried", load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh: func(context.Context, token.Connection) (token.Token, error) {
				return token.Token{}, token.Transient("ajio answered HTTP 503")
			},
			wantCalls: 1, wantErr: "transient: ajio answered HTTP 503"},
		{name: "unclassified provider error: transient, text not trusted",
			load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh: func(context.Context, token.Connection) (token.Token, error) {
				return token.Token{}, errors.New("password=hunter2 refused")
			},
			wantCalls: 1, wantErr: "transient: ajio call failed"},
		{name: "no usable token: never written",
			load:      func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
			refresh:   func(context.Context, token.Connection) (token.Token, error) { return token.Token{ExpiresAt: now}, nil },
			wantCalls: 1, wantErr: "no usable token"},
		{name: "unknown integration type: not retried", payload: task.Payload{IntegrationType: "77"},
			load: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil }, refresh: good,
			wantErr: `no provider is configured for integration type "77"`, skipRetry: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var saves atomic.Int32
			store := &refresh.FakeStore{LoadFn: tt.load, SaveFn: func(ctx context.Context, r token.Connection, tok token.Token) error {
				saves.Add(1)
				if tt.save != nil {
					return tt.save(ctx, r, tok)
				}
				return nil
			}}
			prov := &refresh.FakeProvider{RefreshFn: tt.refresh}
			p := tt.payload
			p.ConnectionID = 11
			if p.IntegrationType == "" {
				p.IntegrationType = "16"
			}
			err := handler(t, store, prov).ProcessTask(context.Background(), newTask(t, p))
			assert.Equal(t, tt.wantCalls, prov.Calls.Load(), "marketplace calls")
			assert.Equal(t, tt.wantSaves, saves.Load(), "writes")
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.Equal(t, tt.skipRetry, errors.Is(err, asynq.SkipRetry), "SkipRetry")
		})
	}
}

// TestSaveRetriedInPlace: a database blip during the write does not cost
// the token already obtained, nor a second marketplace call.
func TestSaveRetriedInPlace(t *testing.T) {
	t.Parallel()
	var saves atomic.Int32
	store := &refresh.FakeStore{
		LoadFn: func(context.Context, int64) (token.Connection, error) { return conn(time.Minute), nil },
		SaveFn: func(context.Context, token.Connection, token.Token) error {
			if saves.Add(1) < 3 {
				return errors.New("driver: bad connection")
			}
			return nil
		},
	}
	prov := &refresh.FakeProvider{RefreshFn: good}
	err := handler(t, store, prov).ProcessTask(context.Background(), newTask(t, task.Payload{ConnectionID: 11, IntegrationType: "16"}))
	require.NoError(t, err)
	assert.Equal(t, int32(3), saves.Load())
	assert.Equal(t, int64(1), prov.Calls.Load())
}

// TestReadsOnceUnderTheLease: an attempt reads the row once, and only while
// it holds the connection's lease (real Redis), so what decides the call is
// never a read that another holder's write could have overtaken, and a
// refresh costs one primary-key read, not two.
func TestReadsOnceUnderTheLease(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		expiresIn time.Duration
		wantCalls int64
	}{
		{"due: refreshed", time.Minute, 1},
		{"not due: no call", time.Hour, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leases := testenv.Leases(t)
			var loads, unleased atomic.Int32
			store := &refresh.FakeStore{LoadFn: func(ctx context.Context, id int64) (token.Connection, error) {
				loads.Add(1)
				if probe, err := leases.Acquire(ctx, id, "probe"); err == nil {
					unleased.Add(1)
					probe.Release()
				}
				return conn(tt.expiresIn), nil
			}}
			prov := &refresh.FakeProvider{RefreshFn: good}
			err := handlerWith(t, leases, store, prov).ProcessTask(context.Background(),
				newTask(t, task.Payload{ConnectionID: 11, IntegrationType: "16"}))
			require.NoError(t, err)
			assert.Equal(t, int32(1), loads.Load(), "reads of the row")
			assert.Zero(t, unleased.Load(), "reads made without the connection's lease")
			assert.Equal(t, tt.wantCalls, prov.Calls.Load())
		})
	}
}

func TestBadPayloadIsNotRetried(t *testing.T) {
	t.Parallel()
	h := handler(t, &refresh.FakeStore{}, &refresh.FakeProvider{})
	err := h.ProcessTask(context.Background(), asynq.NewTask(task.TypeRefresh, []byte(`{"connection_id":"x"`)))
	require.Error(t, err)
	assert.ErrorIs(t, err, asynq.SkipRetry)
}
