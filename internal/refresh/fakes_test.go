package refresh

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

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
