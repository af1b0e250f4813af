package lease_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func manager(t *testing.T, ttl time.Duration) (*lease.Manager, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis at %s", testenv.RedisAddr())
	t.Cleanup(func() { rdb.Close() })
	return lease.New(rdb, "t_"+testenv.RandomID(), ttl), rdb
}

func busy(t *testing.T, err error) *lease.BusyError {
	t.Helper()
	var b *lease.BusyError
	require.True(t, errors.As(err, &b), "want a BusyError, got %v", err)
	return b
}

// TestOneHolderPerConnection: a held lease refuses a second taker of the
// same connection, not of another; a release frees it at once.
func TestOneHolderPerConnection(t *testing.T) {
	t.Parallel()
	m, _ := manager(t, 5*time.Second)
	ctx := context.Background()
	h, err := m.Acquire(ctx, 11, "refresh:11")
	require.NoError(t, err)

	_, err = m.Acquire(ctx, 11, "refresh:11")
	b := busy(t, err)
	assert.Equal(t, int64(11), b.ConnectionID)
	assert.Greater(t, b.Remaining, time.Duration(0))
	assert.LessOrEqual(t, b.Remaining, 5*time.Second)
	assert.Equal(t, "another refresh of connection 11 is in flight", err.Error())

	other, err := m.Acquire(ctx, 12, "refresh:12")
	require.NoError(t, err, "another connection is not held")
	other.Release()

	h.Release()
	h.Release() // twice is harmless
	again, err := m.Acquire(ctx, 11, "refresh:11")
	require.NoError(t, err, "released at once")
	again.Release()
}

// TestRenewedWhileHeld: a holder working longer than the TTL keeps its
// lease, because it renews it.
func TestRenewedWhileHeld(t *testing.T) {
	t.Parallel()
	m, _ := manager(t, 300*time.Millisecond)
	ctx := context.Background()
	h, err := m.Acquire(ctx, 11, "w")
	require.NoError(t, err)
	defer h.Release()
	time.Sleep(time.Second) // over three TTLs
	_, err = m.Acquire(ctx, 11, "w2")
	busy(t, err)
	assert.False(t, h.Lost())
}

// TestDeadHolderExpires: a holder that stopped renewing (its process was
// killed) leaves a key that expires by itself after the TTL.
func TestDeadHolderExpires(t *testing.T) {
	t.Parallel()
	m, rdb := manager(t, 400*time.Millisecond)
	ctx := context.Background()
	// What a killed holder leaves: its key with the TTL, and no renewal.
	require.NoError(t, rdb.Set(ctx, m.Key(11), "dead-holder", 400*time.Millisecond).Err())
	_, err := m.Acquire(ctx, 11, "w")
	busy(t, err)
	testenv.Eventually(t, 5*time.Second, "the dead holder's lease to expire", func() bool {
		h, err := m.Acquire(ctx, 11, "w")
		if err != nil {
			return false
		}
		h.Release()
		return true
	})
}

// TestLostLeaseIsNotReleasedForTheNextHolder: a holder whose lease expired
// and was taken by another notices it at its next renewal, and its release
// leaves the new holder's lease alone.
func TestLostLeaseIsNotReleasedForTheNextHolder(t *testing.T) {
	t.Parallel()
	m, rdb := manager(t, 300*time.Millisecond)
	ctx := context.Background()
	h, err := m.Acquire(ctx, 11, "first")
	require.NoError(t, err)
	require.NoError(t, rdb.Del(ctx, m.Key(11)).Err()) // as if it had expired
	next, err := m.Acquire(ctx, 11, "second")
	require.NoError(t, err)
	defer next.Release()
	testenv.Eventually(t, 5*time.Second, "the first holder to notice", h.Lost)
	h.Release()
	_, err = m.Acquire(ctx, 11, "third")
	busy(t, err)
}

// TestRedisDownIsNotBusy: when Redis cannot be asked the error says so; it
// is not mistaken for another holder.
func TestRedisDownIsNotBusy(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	_, err := lease.New(rdb, "x", 0).Acquire(context.Background(), 11, "w")
	require.Error(t, err)
	var b *lease.BusyError
	assert.False(t, errors.As(err, &b))
}

// TestOneLeaderPerRole: a role's lease has one holder fleet-wide; the others
// are told (nil, nil) and no error; Done closes on release, and the role is
// free at once for the next taker. A role never collides with a connection.
func TestOneLeaderPerRole(t *testing.T) {
	t.Parallel()
	m, rdb := manager(t, 5*time.Second)
	ctx := context.Background()
	h, err := m.TryLead(ctx, "census", "replica-a")
	require.NoError(t, err)
	require.NotNil(t, h)
	other, err := m.TryLead(ctx, "census", "replica-b")
	require.NoError(t, err)
	assert.Nil(t, other, "a second replica does not lead")
	c, err := m.Acquire(ctx, 1, "refresh:1")
	require.NoError(t, err, "a connection's lease is another key")
	c.Release()
	assert.True(t, strings.HasSuffix(rdb.Get(ctx, m.RoleKey("census")).Val(), "replica-a"), "the holder is named for operators")

	h.Release()
	select {
	case <-h.Done():
	default:
		t.Fatal("Done is not closed after Release")
	}
	next, err := m.TryLead(ctx, "census", "replica-b")
	require.NoError(t, err)
	require.NotNil(t, next, "released: the next replica leads at once")
	next.Release()
}
