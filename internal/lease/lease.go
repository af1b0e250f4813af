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
// key per connection, taken with SET NX PX, its value a random token and the
// holder's name; renewed and released by token-checked Lua scripts (the
// scheme of github.com/bsm/redislock, which this package used until a
// refresh needed the lease and one more read in a single command:
// AcquireLooking).
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
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultTTL is how long a lease outlives a holder that stopped renewing it.
const DefaultTTL = 15 * time.Second

// A lease's key holds a random token followed by the holder's name; only
// the token's holder renews or deletes it.
var (
	// lookingObtain takes the lease (KEYS[1], value ARGV[1], ARGV[2] ms)
	// and answers whether KEYS[2] holds the field ARGV[3] (1 or 0); -1 when
	// another holder has the lease.
	lookingObtain = redis.NewScript(`
if redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
  return redis.call("hexists", KEYS[2], ARGV[3])
end
return -1`)
	renew   = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`)
	release = redis.NewScript(`if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`)
)

// Manager takes and renews connection leases in one Redis.
type Manager struct {
	rdb    redis.UniversalClient
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
	return &Manager{rdb: rdb, prefix: "token-refresher:{" + namespace + "}:lease:", ttl: ttl}
}

// TTL is how long a lease lives without renewal.
func (m *Manager) TTL() time.Duration { return m.ttl }

// Client is the Redis the leases live in: a Look must name a hash there.
func (m *Manager) Client() redis.UniversalClient { return m.rdb }

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

// Acquire takes the lease of a connection and renews it until Release.
// holder names the taker in Redis for operators (a task id; never a secret).
// It returns a *BusyError when another holder has the lease, and Redis's
// error when Redis cannot be asked. It costs one command (SET NX PX).
func (m *Manager) Acquire(ctx context.Context, connectionID int64, holder string) (*Held, error) {
	key, value := m.Key(connectionID), newValue(holder)
	ok, err := m.rdb.SetNX(ctx, key, value, m.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("take the lease of connection %d: %w", connectionID, err)
	}
	if !ok {
		return nil, m.busy(ctx, connectionID)
	}
	return m.hold(ctx, key, value), nil
}

// Look is a hash field whose presence AcquireLooking reads in the command
// that takes the lease. The hash must live in the manager's Redis (Client),
// and its key should carry the lease's hash tag ({namespace}), as the
// outbox's does, so both keys would sit in one Redis Cluster slot.
type Look struct {
	Hash, Field string
}

// AcquireLooking is Acquire, and also reports whether look's field exists,
// read in the same command that takes the lease (a Lua script): one
// command where Acquire and HEXISTS took two. A refresh looks at the
// outbox's entry of its connection (a kept token, no call may overtake it)
// this way.
func (m *Manager) AcquireLooking(ctx context.Context, connectionID int64, holder string, look Look) (*Held, bool, error) {
	key, value := m.Key(connectionID), newValue(holder)
	n, err := lookingObtain.Run(ctx, m.rdb, []string{key, look.Hash}, value, m.ttl.Milliseconds(), look.Field).Int()
	if err != nil {
		return nil, false, fmt.Errorf("take the lease of connection %d: %w", connectionID, err)
	}
	if n < 0 {
		return nil, false, m.busy(ctx, connectionID)
	}
	return m.hold(ctx, key, value), n == 1, nil
}

func (m *Manager) busy(ctx context.Context, connectionID int64) error {
	left, err := m.rdb.PTTL(ctx, m.Key(connectionID)).Result()
	if err != nil || left < 0 {
		left = 0
	}
	return &BusyError{ConnectionID: connectionID, Remaining: left}
}

// TryLead takes the fleet-wide lease of a role (a job one process of the
// fleet does at a time, such as the census) and renews it until Release. It
// returns (nil, nil) when another holder has it, and Redis's error when Redis
// cannot be asked. The key is the role's, under the same namespace as the
// connections' (token-refresher:{queue}:lease:role:<role>), so it never
// collides with a connection id.
func (m *Manager) TryLead(ctx context.Context, role, holder string) (*Held, error) {
	key, value := m.RoleKey(role), newValue(holder)
	ok, err := m.rdb.SetNX(ctx, key, value, m.ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("take the %s lease: %w", role, err)
	}
	if !ok {
		return nil, nil
	}
	return m.hold(ctx, key, value), nil
}

// RoleKey is the Redis key of a role's lease.
func (m *Manager) RoleKey(role string) string { return m.prefix + "role:" + role }

// newValue is a lease's value: a random token (16 bytes, base64url), then
// the holder's name for operators.
func newValue(holder string) string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b) + holder
}

func (m *Manager) hold(ctx context.Context, key, value string) *Held {
	renewCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Held{rdb: m.rdb, key: key, value: value, cancel: cancel, done: make(chan struct{})}
	go h.renew(renewCtx, m.ttl)
	return h
}

// Held is a lease taken by this process.
type Held struct {
	rdb    redis.UniversalClient
	key    string
	value  string
	cancel context.CancelFunc
	done   chan struct{}
	lost   atomic.Bool
	once   sync.Once
}

// errLost: a renewal found the key gone or someone else's.
var errLost = errors.New("lease: not held")

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
			err := h.extend(rctx, ttl)
			cancel()
			if errors.Is(err, errLost) {
				h.lost.Store(true)
				return
			}
		}
	}
}

func (h *Held) extend(ctx context.Context, ttl time.Duration) error {
	n, err := renew.Run(ctx, h.rdb, []string{h.key}, h.value, ttl.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if n != 1 {
		return errLost
	}
	return nil
}

// Done is closed when this process stops renewing the lease: a renewal
// found it lost, or Release was called.
func (h *Held) Done() <-chan struct{} { return h.done }

// Lost reports whether a renewal found that the lease had expired or was
// taken by another holder: the guarded write still decides what is stored.
func (h *Held) Lost() bool { return h.lost.Load() }

// Release stops renewing and deletes the lease if it is still this
// holder's (one command: a token-checked delete). It is safe to call more
// than once, and it uses its own short deadline, so a cancelled task still
// frees its connection at once.
func (h *Held) Release() {
	h.once.Do(func() {
		h.cancel()
		<-h.done
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// A lease already gone or lost needs no release.
		_ = release.Run(ctx, h.rdb, []string{h.key}, h.value).Err()
	})
}
