// Package lease holds leases in Redis. A role lease (TryLead) makes one
// process of the fleet do a job at a time (the census gauges, see
// internal/census Lead). A connection lease is the per-connection mutual
// exclusion of marketplace calls:
// at most one refresh of a connection calls its marketplace at any moment,
// fleet-wide, whichever path its task came from (the scan queue, the urgent
// queue, a retry, any number of scanner and refresher replicas, an
// operator's Run in asynqmon).
//
// Why a lease, and not one task id across queues or a check at enqueue time:
// asynq task ids are unique per queue only, a retried or re-run task is the
// same task again, and no enqueue-time check can see an attempt that is
// already in flight. The one place every path goes through is the handler,
// right before the call, so that is where the connection is locked: a Redis
// key per connection, taken with SET NX PX by github.com/bsm/redislock (a
// small, maintained go-redis lock with token-checked Lua renew and release,
// chosen over hand-written scripts).
//
// A holder renews its lease every TTL/3 while it works. A holder that dies
// (SIGKILL, a lost node) stops renewing, and its key expires after TTL
// (default 15s): well inside asynq's own recovery of the dead worker's task,
// which waits for the task's 30s lease and then for the recoverer's
// one-minute poll.
//
// The lease does not fence by itself: a holder paused past its TTL (a long GC
// stop, a partition from Redis) can still finish its call after another
// holder began. The store's guarded write is the fence (internal/mysql
// Store.Save): it stores only over the row it read, or over an older token,
// so the newest-issued token wins whichever write lands last.
package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
)

// DefaultTTL is how long a lease outlives a holder that stopped renewing it.
const DefaultTTL = 15 * time.Second

// Manager takes and renews connection leases in one Redis.
type Manager struct {
	rdb    redis.UniversalClient
	locks  *redislock.Client
	prefix string
	ttl    time.Duration
}

// New returns a manager whose keys live under namespace (the scan queue's
// name, so that deployments sharing a Redis under different queues, and
// parallel tests, never see each other's leases). ttl <= 0 takes DefaultTTL.
func New(rdb redis.UniversalClient, namespace string, ttl time.Duration) *Manager {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Manager{rdb: rdb, locks: redislock.New(rdb), prefix: "token-refresher:{" + namespace + "}:lease:", ttl: ttl}
}

// TTL is how long a lease lives without renewal.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Key is the Redis key of a connection's lease.
func (m *Manager) Key(connectionID int64) string {
	return m.prefix + strconv.FormatInt(connectionID, 10)
}

// BusyError says another holder has the connection's lease.
type BusyError struct {
	ConnectionID int64
	// Remaining is how long the other lease lives without renewal (0 when
	// it ended while this was asked).
	Remaining time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("another refresh of connection %d is in flight", e.ConnectionID)
}

// Lease is a connection's lease as Acquire hands it over (a *Held): what
// its taker does with it.
type Lease interface {
	// Lost reports whether a renewal found the lease expired or taken.
	Lost() bool
	// Release stops renewing the lease and deletes it if it is still
	// this holder's; it is safe to call more than once.
	Release()
}

var _ Lease = (*Held)(nil)

// Acquire takes the lease of a connection and renews it until Release.
// holder names the taker in Redis for operators (a task id; never a secret).
// It returns a *BusyError when another holder has the lease, and Redis's
// error when Redis cannot be asked.
func (m *Manager) Acquire(ctx context.Context, connectionID int64, holder string) (Lease, error) {
	key := m.Key(connectionID)
	lock, err := m.locks.Obtain(ctx, key, m.ttl, &redislock.Options{Metadata: holder})
	if errors.Is(err, redislock.ErrNotObtained) {
		left, perr := m.rdb.PTTL(ctx, key).Result()
		if perr != nil || left < 0 {
			left = 0
		}
		return nil, &BusyError{ConnectionID: connectionID, Remaining: left}
	}
	if err != nil {
		return nil, fmt.Errorf("take the lease of connection %d: %w", connectionID, err)
	}
	return m.hold(ctx, lock), nil
}

// TryLead takes the fleet-wide lease of a role (a job one process of the
// fleet does at a time, such as the census) and renews it until Release. It
// returns (nil, nil) when another holder has it, and Redis's error when Redis
// cannot be asked. The key is the role's, under the same namespace as the
// connections' (token-refresher:{queue}:lease:role:<role>), so it never
// collides with a connection id.
func (m *Manager) TryLead(ctx context.Context, role, holder string) (*Held, error) {
	lock, err := m.locks.Obtain(ctx, m.RoleKey(role), m.ttl, &redislock.Options{Metadata: holder})
	if errors.Is(err, redislock.ErrNotObtained) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take the %s lease: %w", role, err)
	}
	return m.hold(ctx, lock), nil
}

// RoleKey is the Redis key of a role's lease.
func (m *Manager) RoleKey(role string) string { return m.prefix + "role:" + role }

func (m *Manager) hold(ctx context.Context, lock *redislock.Lock) *Held {
	renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Held{lock: lock, cancel: cancel, done: make(chan struct{})}
	go h.renew(renewCtx, m.ttl)
	return h
}

// Held is a lease taken by this process.
type Held struct {
	lock   *redislock.Lock
	cancel context.CancelFunc
	done   chan struct{}
	lost   atomic.Bool
	once   sync.Once
}

// renew extends the lease every ttl/3. A renewal that finds the key gone or
// someone else's marks the lease lost and stops; a Redis error is retried at
// the next tick (the lease may still be ours).
func (h *Held) renew(ctx context.Context, ttl time.Duration) {
	defer close(h.done)
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			err := h.lock.Refresh(rctx, ttl, nil)
			cancel()
			if errors.Is(err, redislock.ErrNotObtained) {
				h.lost.Store(true)
				return
			}
		}
	}
}

// Done is closed when this process stops renewing the lease: a renewal
// found it lost, or Release was called.
func (h *Held) Done() <-chan struct{} { return h.done }

// Lost reports whether a renewal found that the lease had expired or was
// taken by another holder: the guarded write still decides what is stored.
func (h *Held) Lost() bool { return h.lost.Load() }

// Release stops renewing and deletes the lease if it is still this
// holder's. It is safe to call more than once, and it uses its own short
// deadline, so a cancelled task still frees its connection at once.
func (h *Held) Release() {
	h.once.Do(func() {
		h.cancel()
		<-h.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = h.lock.Release(ctx) // a lease already gone or lost needs no release
	})
}
