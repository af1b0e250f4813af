package refresh

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// The package's one set of fakes, for its white-box tests and, exported from
// this _test file (the export_test.go idiom), for the black-box tests of
// package refresh_test. Each function field is named <Method>Fn and takes
// the method's own arguments.

// FakeStore is a Store in memory. LoadFn and SaveFn answer when set;
// otherwise Load returns Conn and Save records the token in Saved.
type FakeStore struct {
	mu      sync.Mutex
	Conn    token.Connection
	saved   []token.Token
	LoadFn  func(ctx context.Context, id int64) (token.Connection, error)
	ClaimFn func(ctx context.Context, read token.Connection) error
	SaveFn  func(ctx context.Context, read token.Connection, t token.Token) error
}

var _ Store = (*FakeStore)(nil)

// Load implements Store.
func (s *FakeStore) Load(ctx context.Context, id int64) (token.Connection, error) {
	if s.LoadFn != nil {
		return s.LoadFn(ctx, id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Conn, nil
}

// Claim implements Store: nil unless ClaimFn says otherwise.
func (s *FakeStore) Claim(ctx context.Context, read token.Connection) error {
	if s.ClaimFn != nil {
		return s.ClaimFn(ctx, read)
	}
	return nil
}

// Save implements Store.
func (s *FakeStore) Save(ctx context.Context, read token.Connection, t token.Token) error {
	if s.SaveFn != nil {
		return s.SaveFn(ctx, read, t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, t)
	return nil
}

// Saved returns the tokens Save recorded (none when SaveFn is set).
func (s *FakeStore) Saved() []token.Token {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.saved)
}

// FakeProvider is a marketplace client that counts its calls and answers
// with RefreshFn.
type FakeProvider struct {
	Calls     atomic.Int64
	RefreshFn func(ctx context.Context, c token.Connection) (token.Token, error)
}

var _ token.Provider = (*FakeProvider)(nil)

// Refresh implements token.Provider.
func (p *FakeProvider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	p.Calls.Add(1)
	return p.RefreshFn(ctx, c)
}

// FakeLimiter is a Limiter of Rate calls per second that answers Take with
// TakeFn.
type FakeLimiter struct {
	Rate   float64
	TakeFn func(ctx context.Context) (time.Duration, error)
}

var _ Limiter = (*FakeLimiter)(nil)

// Take implements Limiter.
func (l *FakeLimiter) Take(ctx context.Context) (time.Duration, error) { return l.TakeFn(ctx) }

// PerSecond implements Limiter.
func (l *FakeLimiter) PerSecond() float64 { return l.Rate }

// FakeScheduler is a Scheduler in memory: Schedule records its calls,
// Generations counts its calls and answers Recorded.
type FakeScheduler struct {
	mu          sync.Mutex
	Recorded    map[int64]task.Generation
	Scheduled   []FakeSchedule
	GenerationN int
}

// FakeSchedule is one call of FakeScheduler.Schedule.
type FakeSchedule struct {
	Payload  task.Payload
	Lifetime time.Duration
	At       time.Time
}

var _ Scheduler = (*FakeScheduler)(nil)

// Schedule implements Scheduler.
func (s *FakeScheduler) Schedule(_ context.Context, p task.Payload, lifetime time.Duration, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Scheduled = append(s.Scheduled, FakeSchedule{p, lifetime, at})
	return nil
}

// Generations implements Scheduler.
func (s *FakeScheduler) Generations(_ context.Context, ids []int64) (map[int64]task.Generation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.GenerationN++
	out := map[int64]task.Generation{}
	for _, id := range ids {
		if g, ok := s.Recorded[id]; ok {
			out[id] = g
		}
	}
	return out, nil
}

// Wake implements Scheduler.
func (s *FakeScheduler) Wake(context.Context, *asynq.Task) error { return nil }

// Calls returns the Schedule calls and the number of Generations calls.
func (s *FakeScheduler) Calls() ([]FakeSchedule, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.Scheduled), s.GenerationN
}

// FakeLeases is a Leases in memory, so a unit test of the handler needs no
// Redis: a connection's lease is held from Acquire to its Release, and
// Acquire of a held one returns a *lease.BusyError (Remaining: TTL).
// AcquireFn answers instead when set.
type FakeLeases struct {
	mu        sync.Mutex
	held      map[int64]string // connection → holder
	taken     int
	TTL       time.Duration
	AcquireFn func(ctx context.Context, connectionID int64, holder string) (lease.Lease, error)
}

var _ Leases = (*FakeLeases)(nil)

// Acquire implements Leases.
func (l *FakeLeases) Acquire(ctx context.Context, connectionID int64, holder string) (lease.Lease, error) {
	if l.AcquireFn != nil {
		return l.AcquireFn(ctx, connectionID, holder)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, busy := l.held[connectionID]; busy {
		return nil, &lease.BusyError{ConnectionID: connectionID, Remaining: l.TTL}
	}
	if l.held == nil {
		l.held = map[int64]string{}
	}
	l.held[connectionID] = holder
	l.taken++
	return &FakeLease{leases: l, id: connectionID}, nil
}

// Holder returns who holds the connection's lease, if anyone does.
func (l *FakeLeases) Holder(connectionID int64) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h, ok := l.held[connectionID]
	return h, ok
}

// Taken counts the leases Acquire handed over.
func (l *FakeLeases) Taken() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.taken
}

// FakeLease is a lease FakeLeases handed over (or, made directly, one
// that belongs to no FakeLeases).
type FakeLease struct {
	leases *FakeLeases
	id     int64
	once   sync.Once
	lost   atomic.Bool
}

// Lost implements lease.Lease.
func (f *FakeLease) Lost() bool { return f.lost.Load() }

// Release implements lease.Lease: the connection's lease is free again
// (once; a lost lease is someone else's and is left alone).
func (f *FakeLease) Release() {
	f.once.Do(func() {
		if f.lost.Load() || f.leases == nil {
			return
		}
		f.leases.mu.Lock()
		defer f.leases.mu.Unlock()
		delete(f.leases.held, f.id)
	})
}

// Lose makes the lease lost, as a renewal that found it expired would.
func (f *FakeLease) Lose() { f.lost.Store(true) }
