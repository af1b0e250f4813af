package refresh_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestLeaseWithoutRedis: the handler's lease is an interface
// (refresh.Leases), so its unit tests need no Redis (the integration tests
// keep the real one). A connection whose lease another refresh holds is put
// back without a call and without counting as a failure; once the lease is
// free, the refresh takes it, calls once, stores the token and releases it.
func TestLeaseWithoutRedis(t *testing.T) {
	t.Parallel()
	leases := &refresh.FakeLeases{TTL: 5 * time.Second}
	store := &refresh.FakeStore{Conn: conn(time.Minute)}
	prov := &refresh.FakeProvider{RefreshFn: good}
	h := refresh.New(store, leases, map[string]refresh.Marketplace{
		"16": {Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}, Client: prov},
	}, refresh.Config{Now: func() time.Time { return now }}, zap.NewNop(), nil)
	tk := newTask(t, task.Payload{ConnectionID: 11, IntegrationType: "16", DueExpiry: store.Conn.ExpiresAt})

	other, err := leases.Acquire(context.Background(), 11, "another refresh")
	require.NoError(t, err)
	err = h.ProcessTask(context.Background(), tk)
	var deferred *refresh.DeferredError
	require.True(t, errors.As(err, &deferred), "put back: %v", err)
	assert.False(t, refresh.IsFailure(err), "waiting for another refresh is not a failure")
	assert.Equal(t, refresh.BusyRecheck, deferred.After, "looked at again within BusyRecheck")
	assert.Zero(t, prov.Calls.Load(), "no call while another refresh holds the lease")
	holder, held := leases.Holder(11)
	assert.True(t, held)
	assert.Equal(t, "another refresh", holder, "the other holder's lease is left alone")

	other.Release()
	require.NoError(t, h.ProcessTask(context.Background(), tk))
	assert.EqualValues(t, 1, prov.Calls.Load())
	require.Len(t, store.Saved(), 1)
	assert.Equal(t, 2, leases.Taken())
	_, held = leases.Holder(11)
	assert.False(t, held, "the refresh released the lease")
}

// TestLostLeaseStillStores: a lease lost during the call (a renewal found
// it expired) does not throw the new token away: the guarded write decides
// what is stored.
func TestLostLeaseStillStores(t *testing.T) {
	t.Parallel()
	leases := &refresh.FakeLeases{}
	store := &refresh.FakeStore{Conn: conn(time.Minute)}
	var held *refresh.FakeLease
	prov := &refresh.FakeProvider{RefreshFn: func(ctx context.Context, c token.Connection) (token.Token, error) {
		held.Lose()
		return good(ctx, c)
	}}
	leases.AcquireFn = func(ctx context.Context, id int64, holder string) (lease.Lease, error) {
		held = &refresh.FakeLease{}
		return held, nil
	}
	h := refresh.New(store, leases, map[string]refresh.Marketplace{
		"16": {Target: token.Target{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}, Client: prov},
	}, refresh.Config{Now: func() time.Time { return now }}, zap.NewNop(), nil)
	require.NoError(t, h.ProcessTask(context.Background(), newTask(t, task.Payload{ConnectionID: 11, IntegrationType: "16"})))
	assert.EqualValues(t, 1, prov.Calls.Load())
	assert.Len(t, store.Saved(), 1, "the token obtained is stored")
}
