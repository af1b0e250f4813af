// Package writegate knows whether the database takes writes, so that a
// refresher stops calling marketplaces while it does not: a token issued
// then could not be stored, and a rotated refresh token spent on such a
// call is the seller's credential lost.
//
// The gate is fed by the writes themselves (the handler's claims and
// stores, internal/refresh): one that the database refuses
// (token.ErrUnwritable: a read-only server after a failover or during
// maintenance, a lost connection, a timeout) closes it; one that succeeds
// opens it. While it is closed a probe (a write that touches no row,
// mysql.Store.ProbeWrite) runs every ProbeInterval, so work resumes by itself
// within about a second of the database taking writes again, with no
// restart. Closing the gate is not the fence (each call is still preceded by
// its own guarded claim, mysql.Store.Claim); it is what keeps a fleet of
// workers from each finding the same refusal, and what /readyz and the
// gauge token_refresher_database_writable report.
package writegate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/token"
)

// DefaultProbeInterval is how often a closed gate probes the database.
const DefaultProbeInterval = time.Second

// Observer hears of every change (metrics); it may be nil.
type Observer interface {
	// Writable is called with the gate's state after every change, and
	// once at New (open).
	Writable(open bool)
}

// Gate is the database's write health as this process last saw it. The
// zero value is not usable; use New.
type Gate struct {
	probe    func(ctx context.Context) error
	interval time.Duration
	log      *zap.Logger
	obs      Observer
	now      func() time.Time

	mu     sync.Mutex
	open   bool
	reason error     // why it is closed (secret-free: a store error)
	since  time.Time // when it closed
	opened chan struct{}
	wake   chan struct{}
}

// New returns an open gate. probe is a write that touches no row
// (mysql.Store.ProbeWrite); interval <= 0 takes DefaultProbeInterval. Start
// the probing with Run.
func New(probe func(ctx context.Context) error, interval time.Duration, log *zap.Logger, obs Observer) *Gate {
	if interval <= 0 {
		interval = DefaultProbeInterval
	}
	g := &Gate{probe: probe, interval: interval, log: log, obs: obs, now: time.Now,
		open: true, opened: make(chan struct{}), wake: make(chan struct{}, 1)}
	close(g.opened)
	if obs != nil {
		obs.Writable(true)
	}
	return g
}

// Report feeds the result of a write (or of a read whose failure says the
// database is unreachable) to the gate: nil opens it; an error wrapping
// token.ErrUnwritable closes it; any other error (a row's own fault, a
// conflict) says nothing about the database and is ignored. It reports
// whether err closed the gate or kept it closed.
func (g *Gate) Report(err error) bool {
	switch {
	case err == nil:
		g.set(true, nil)
		return false
	case errors.Is(err, token.ErrUnwritable):
		g.set(false, err)
		return true
	default:
		return false
	}
}

func (g *Gate) set(open bool, reason error) {
	g.mu.Lock()
	if open == g.open {
		changed := !open && (g.reason == nil || reason.Error() != g.reason.Error())
		if !open {
			g.reason = reason
		}
		g.mu.Unlock()
		if changed {
			// The probe right after the closing names the server's own
			// reason (read_only=ON) where the refused write could only
			// say its connection was dropped (rejectReadOnly).
			g.log.Warn("the database still refuses writes", zap.Error(reason))
		}
		return
	}
	g.open = open
	if open {
		closedFor := g.now().Sub(g.since)
		cause := g.reason
		g.reason = nil
		close(g.opened)
		g.mu.Unlock()
		g.log.Info("the database takes writes again: marketplace calls resume",
			zap.Duration("closed_for", closedFor.Round(time.Millisecond)), zap.NamedError("was", cause))
	} else {
		g.reason = reason
		g.since = g.now()
		g.opened = make(chan struct{})
		g.mu.Unlock()
		g.log.Warn("the database refuses writes: no marketplace calls until a write succeeds; tasks wait without spending retries",
			zap.Error(reason))
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	if g.obs != nil {
		g.obs.Writable(open)
	}
}

// Open reports whether the last write succeeded (or none failed yet).
func (g *Gate) Open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// Err is nil while the gate is open, and otherwise an error saying since
// when and why the database refuses writes (for /readyz; it holds no
// secret: store errors never quote a value).
func (g *Gate) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return nil
	}
	return &ClosedError{Since: g.since, Reason: g.reason}
}

// ClosedError is Err's error.
type ClosedError struct {
	Since  time.Time
	Reason error
}

func (e *ClosedError) Error() string {
	reason := e.Reason.Error()
	if !strings.HasPrefix(reason, token.ErrUnwritable.Error()) {
		reason = token.ErrUnwritable.Error() + ": " + reason
	}
	return reason + " (since " + e.Since.UTC().Format(time.RFC3339) + ")"
}

func (e *ClosedError) Unwrap() error { return e.Reason }

// Wait blocks until the gate is open, ctx ends or max passes, and reports
// whether it is open.
func (g *Gate) Wait(ctx context.Context, max time.Duration) bool {
	g.mu.Lock()
	open, opened := g.open, g.opened
	g.mu.Unlock()
	if open {
		return true
	}
	if max <= 0 {
		return false
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-opened:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return g.Open()
}

// OpenProbeEvery is how many probe intervals pass between probes while the
// gate is open: an idle refresher (no writes to learn from) still finds a
// read-only database within about 5s, so /readyz and the gauge say so
// before the first task does. A probe touches no row.
const OpenProbeEvery = 5

// Run probes the database every interval while the gate is closed, and
// every OpenProbeEvery intervals while it is open, until ctx ends.
func (g *Gate) Run(ctx context.Context) {
	for {
		wait := g.interval
		if g.Open() {
			wait = g.interval * OpenProbeEvery
		}
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
			// Just closed: probe at once, so the reason shown is the
			// server's own (read_only=ON) rather than the refused
			// write's (a dropped connection).
		case <-time.After(wait):
		}
		pctx, cancel := context.WithTimeout(ctx, max(g.interval*5, 5*time.Second))
		err := g.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, token.ErrUnwritable) {
			// A probe error is the database's by definition.
			err = fmt.Errorf("%w: %w", token.ErrUnwritable, err)
		}
		g.Report(err)
	}
}
