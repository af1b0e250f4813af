// Package breaker is the circuit breaker of one marketplace. After a run of
// consecutive transient failures it opens for a cool-off, during which no
// call is made; then it lets one probe through (half-open): a probe that
// succeeds closes it, one that fails opens it again.
//
// The state is kept per refresher process, not shared in Redis. A breaker's
// job is to stop one process from spending its workers and its tasks'
// retries on a marketplace that is down; each process learns that from its
// own calls within a few failures. Sharing it would put a Redis write on
// every call's outcome (a hot key per marketplace) and make every replica
// depend on one more piece of shared state to call at all, for little gain:
// with N replicas a down marketplace sees at most N probes per cool-off, and
// the fleet-wide call rate is already bounded by the shared rate limiter.
package breaker

import (
	"sync"
	"time"
)

// State is where a breaker stands.
type State int

// The states.
const (
	Closed   State = iota // calls go through
	Open                  // no calls until the cool-off ends
	HalfOpen              // one probe in flight decides
)

func (s State) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half_open"
	default:
		return "closed"
	}
}

// Result is what a call that was let through came to.
type Result int

// The results a caller reports.
const (
	// Success: the marketplace answered (a rejected credential counts:
	// the marketplace is up).
	Success Result = iota
	// Failure: a transient failure of the marketplace (network, timeout,
	// 5xx, 429, garbage).
	Failure
	// Ignore: the call was not made or says nothing about the
	// marketplace (cancelled by shutdown, a database error).
	Ignore
)

// Config of a breaker. Zero values take the defaults.
type Config struct {
	// Failures is how many consecutive transient failures open it
	// (default 5).
	Failures int
	// Cooldown is how long it stays open before a probe (default 30s).
	Cooldown time.Duration
	// OnChange is told about every state change (logs); it runs with the
	// breaker's lock held, so it must not call the breaker.
	OnChange func(from, to State)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Breaker is safe for concurrent use.
type Breaker struct {
	cfg       Config
	mu        sync.Mutex
	state     State
	failures  int
	openUntil time.Time
}

// New returns a closed breaker.
func New(cfg Config) *Breaker {
	if cfg.Failures <= 0 {
		cfg.Failures = 5
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Breaker{cfg: cfg}
}

// Acquire asks to make a call. When the call may go, wait is zero and done
// must be called once with the call's result. Otherwise wait is how long to
// hold off (the rest of the cool-off, or while a probe decides) and done is
// nil.
func (b *Breaker) Acquire() (done func(Result), wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.cfg.Now()
	switch b.state {
	case Open:
		if now.Before(b.openUntil) {
			return nil, b.openUntil.Sub(now)
		}
		b.set(HalfOpen)
		return b.reporter(true), 0
	case HalfOpen:
		// One probe at a time; the others come back when it has likely
		// been decided.
		return nil, max(b.cfg.Cooldown/4, 100*time.Millisecond)
	default:
		return b.reporter(false), 0
	}
}

// State returns the current state.
func (b *Breaker) State() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

func (b *Breaker) reporter(probe bool) func(Result) {
	var once sync.Once
	return func(r Result) { once.Do(func() { b.report(probe, r) }) }
}

func (b *Breaker) report(probe bool, r Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if probe {
		switch r {
		case Success:
			b.failures = 0
			b.set(Closed)
		case Failure:
			b.open()
		default:
			// The probe said nothing: let the next caller probe.
			b.state = Open
		}
		return
	}
	// Calls let through before the breaker opened may report while it is
	// open or probing; they do not move it.
	if b.state != Closed {
		return
	}
	switch r {
	case Success:
		b.failures = 0
	case Failure:
		b.failures++
		if b.failures >= b.cfg.Failures {
			b.open()
		}
	}
}

func (b *Breaker) open() {
	b.failures = 0
	b.openUntil = b.cfg.Now().Add(b.cfg.Cooldown)
	b.set(Open)
}

func (b *Breaker) set(s State) {
	if s == b.state {
		return
	}
	from := b.state
	b.state = s
	if b.cfg.OnChange != nil {
		b.cfg.OnChange(from, s)
	}
}
