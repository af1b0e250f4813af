// Package refresh is the asynq handler of a refresh task: wait while the
// database refuses writes (internal/writegate), take the connection's lease
// (at most one marketplace call per connection in flight, fleet-wide:
// internal/lease), store a token kept for it first (keep.go), load the
// connection under the lease, skip it if it is no longer due, wait for the
// marketplace's circuit breaker and fleet-wide rate limit, claim the row
// with a guarded write that proves the new token can be stored, call the
// marketplace, store the new token with a guarded write (or keep it in the
// outbox until the database takes it), and classify what went wrong as
// permanent (archived with a reason, not retried in a loop), transient
// (retried with backoff until it heals) or deferred (another refresh of the
// connection in flight, the breaker open, no rate slot, the database
// refusing writes: put back without counting as a failure).
package refresh

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/writegate"
)

// Store is the part of the MySQL store the handler uses (mysql.Store: its
// doc comments give each method's errors). An error that says the database
// takes no write now wraps token.ErrUnwritable.
type Store interface {
	Load(ctx context.Context, id int64) (token.Connection, error)
	// Claim is Save's guard as a write that changes nothing: nil when the
	// row still holds what read holds, token.ErrStale when it does not.
	Claim(ctx context.Context, read token.Connection) error
	Save(ctx context.Context, read token.Connection, t token.Token) error
}

// Limiter is a marketplace's call rate shared by every refresher replica
// (internal/ratelimit).
type Limiter interface {
	// Take takes a slot and returns zero, or takes nothing and returns how
	// long until the next slot frees.
	Take(ctx context.Context) (time.Duration, error)
	PerSecond() float64
}

// Backlog is a marketplace's due work waiting for rate slots, in order of
// expiry (backlog.List).
type Backlog interface {
	// Place puts the connection in the backlog or finds it there; wait
	// is how long the task may wait in place.
	Place(ctx context.Context, connectionID int64, expiry *time.Time, now time.Time, wait time.Duration) (backlog.Place, error)
	// Leave takes it out: its task took a slot.
	Leave(ctx context.Context, connectionID int64) error
}

// Marketplace is what the handler holds of one providers-file entry: its
// target (integration type, kind, refresh_before), the client of its token
// API, and what holds calls back (rate limit, circuit breaker).
// internal/worker builds them from the entries.
type Marketplace struct {
	token.Target
	Client token.Provider
	// CallTimeout is the deadline of one marketplace call; waiting for a
	// rate slot leaves that much of the task's deadline for the call.
	CallTimeout time.Duration
	// Limiter is nil when the marketplace has no rate limit.
	Limiter Limiter
	// Backlog orders the calls waiting for Limiter's slots by their
	// tokens' expiry, fleet-wide (earliest deadline first; internal/
	// backlog). Nil: the order the tasks arrive in.
	Backlog Backlog
	// Breaker is nil when calls are never held back.
	Breaker *breaker.Breaker
	// IgnoresRefreshToken says the marketplace's call never sends the
	// connection's refresh token (its login is inputFields: ajio,
	// unicommerce): a new refresh token it answers with is stored, but it
	// is no credential the next call needs, so it is not written ahead to
	// the durable outbox (keep.go writeAhead); a refused write still keeps
	// it. False (the safe default): a new refresh token is the
	// connection's credential (OAuth rotation).
	IgnoresRefreshToken bool
}

// DeferredError is the error of an attempt that made no marketplace call because
// another refresh of the connection holds its lease, the marketplace's
// circuit breaker is open or its rate limit has no slot soon. It is not a failure (IsFailure): asynq puts the task back for After
// without spending a retry, and RetryDelay honours After.
type DeferredError struct {
	Reason string
	After  time.Duration
}

func (d *DeferredError) Error() string { return task.Deferred(d.Reason) }

// expiringError is a transient failure of a connection whose stored token is
// still live: RetryDelay keeps its backoff within a share of the lifetime
// left, so a token is not allowed to lapse while the backoff sleeps.
type expiringError struct {
	err  error
	left time.Duration
}

func (e *expiringError) Error() string { return e.err.Error() }

func (e *expiringError) Unwrap() error { return e.err }

// BusyRecheck is how soon a task that found its connection's lease taken
// looks again: short, because the other refresh usually ends within a
// marketplace call, and cheap (one Redis round trip), because the wait
// spends no retry.
const BusyRecheck = time.Second

// IsFailure is asynq's Config.IsFailure: a deferred attempt is not a failure.
func IsFailure(err error) bool {
	var d *DeferredError
	return !errors.As(err, &d)
}

// Outcome names what a refresh attempt came to; it is a metric label and a
// log field, so the set is small and fixed.
type Outcome string

// The outcomes of one attempt.
const (
	Refreshed  Outcome = "refreshed"   // new token stored
	NotDue     Outcome = "not_due"     // refreshed meanwhile: no call made
	Inactive   Outcome = "inactive"    // gone or deactivated: no call made
	Stale      Outcome = "stale"       // another path stored a newer token first (or rotated the refresh token refused)
	Satisfied  Outcome = "satisfied"   // on demand: a refresh completed after the request; no call made
	Busy       Outcome = "busy"        // another refresh of the connection holds its lease: put back, not a failure
	Permanent  Outcome = "permanent"   // a failure of class token.ClassPermanent: rejected credentials, malformed inputFields
	Transient  Outcome = "transient"   // a failure of class token.ClassTransient: marketplace or network trouble; retried
	Unusable   Outcome = "unusable"    // a failure of class token.ClassUnusable: an answer the product cannot place; retried, backoff growing to hours
	StoreError Outcome = "store_error" // a row's own database trouble (a deadlock, a lock wait); retried
	Deferred   Outcome = "deferred"    // breaker open, no rate slot, the row changed under the claim: put back, not a failure
	Unwritable Outcome = "unwritable"  // the database refuses writes: no call made, put back, not a failure
	Kept       Outcome = "kept"        // token obtained, its write refused: kept in the outbox until stored (keep.go)
)

// OutcomeOf is the outcome of a failure of class c: the class's word
// (token.Class.String), so the three failure outcomes above are the classes
// and a failure's outcome is never decided apart from its class.
func OutcomeOf(c token.Class) Outcome { return Outcome(c.String()) }

// Observer is told about every attempt (metrics). remaining is the stored
// token's lifetime left when the refresh started (negative: expired; zero
// when there was none).
type Observer interface {
	Attempted(kind string, o Outcome, took time.Duration, remaining time.Duration, hadToken bool)
}

// Notifier hears of each permanent failure where it is recorded (with its
// reason, token.Failure.Reason, the class being permanent), and of each
// stored token (internal/webhook turns them into events on state
// changes). Its calls must not fail the refresh: they log their own errors.
type Notifier interface {
	Failed(ctx context.Context, connectionID int64, integrationType, kind, reason string)
	Refreshed(ctx context.Context, connectionID int64, integrationType, kind string)
}

// Config of a handler.
type Config struct {
	// Notifier is told of permanent failures and stored tokens; nil: no
	// one is.
	Notifier Notifier
	// SaveRetryFor is how long a failed write of a token already obtained
	// is retried in place before the attempt gives up (default 30s). The
	// token in hand may be the only valid one (a rotated refresh token), so
	// losing it to a brief database blip is worth avoiding.
	SaveRetryFor time.Duration
	// RateWait is how long a worker waits in place for a rate slot before
	// the task is deferred instead (default 2s). Waiting in place is the
	// cheapest wait, but a waiting worker serves no other marketplace, so
	// it is kept short, and at most RateWait × rate workers of a process
	// wait for one marketplace at once: the rest are deferred to about when
	// their turn comes.
	RateWait time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Scheduler, when set, schedules every stored token's refresh on its
	// own clock (schedule.go); nil leaves it to the scan.
	Scheduler Scheduler
	// Gate, when set, holds every call back while the database refuses
	// writes (internal/writegate); the handler feeds it its claims and
	// writes. Nil: each task finds out by its own claim.
	Gate *writegate.Gate
	// GateWait is how long a worker waits in place for a closed gate
	// before its task is put back (default 10s; never past the task's
	// deadline less the call's timeout). In-place waiting costs Redis
	// nothing, and the task runs the moment writes succeed again.
	GateWait time.Duration
	// Outbox is the durable outbox of tokens whose write the database
	// refused (internal/outbox, sealed in Redis); nil keeps them in this
	// process's memory only (keep.go).
	Outbox outbox.Outbox
	// Sealed, when Outbox is nil, is the durable outbox seen without the
	// key: a connection with a token sealed there by another replica gets
	// no call (its outcome is kept), and the keeper says so.
	Sealed *outbox.Sealed
	// Fingerprint makes the credentials' fingerprint a permanent failure
	// records (FINGERPRINT_KEY); its zero value makes the legacy, unkeyed
	// one.
	Fingerprint token.Fingerprinter
}

// DefaultRateWait is Config.RateWait's default.
const DefaultRateWait = 2 * time.Second

// Leases is the fleet-wide per-connection exclusion the handler takes
// before it reads a connection and calls its marketplace (*lease.Manager:
// every refresher replica sharing a queue must use the same Redis and
// namespace). Acquire returns a *lease.BusyError when another holder has
// the connection's lease.
type Leases interface {
	Acquire(ctx context.Context, connectionID int64, holder string) (lease.Lease, error)
}

var _ Leases = (*lease.Manager)(nil)

// Handler processes refresh tasks.
type Handler struct {
	kept    *keeper
	store   Store
	leases  Leases
	writes  atomic.Int64 // token writes in progress (Wait)
	markets map[string]Marketplace
	waiting map[string]*atomic.Int64 // workers waiting for a rate slot, by integration type
	cfg     Config
	log     *zap.Logger
	obs     Observer
}

var _ asynq.Handler = (*Handler)(nil)

// New returns a handler. leases is the fleet-wide per-connection exclusion
// (required: every refresher replica sharing a queue must use the same Redis
// and namespace: a *lease.Manager); markets is keyed by integration type;
// obs may be nil.
func New(store Store, leases Leases, markets map[string]Marketplace, cfg Config, log *zap.Logger, obs Observer) *Handler {
	if cfg.SaveRetryFor <= 0 {
		cfg.SaveRetryFor = 30 * time.Second
	}
	if cfg.RateWait <= 0 {
		cfg.RateWait = DefaultRateWait
	}
	if cfg.GateWait <= 0 {
		cfg.GateWait = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	waiting := make(map[string]*atomic.Int64, len(markets))
	for it := range markets {
		waiting[it] = new(atomic.Int64)
	}
	h := &Handler{store: store, leases: leases, markets: markets, waiting: waiting, cfg: cfg, log: log, obs: obs}
	h.kept = &keeper{h: h, durable: cfg.Outbox, local: outbox.NewMemory()}
	if cfg.Outbox == nil {
		h.kept.sealed = cfg.Sealed
	}
	return h
}

// Wait blocks until the token writes in progress end, or timeout passes.
// A write outlives its task's context (a token in hand is stored even when
// the task's deadline or the shutdown's DRAIN_TIMEOUT cancels the task), so
// a process that stops calls Wait after the asynq server's Shutdown and
// before it exits. It reports whether every write ended.
func (h *Handler) Wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for h.writes.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// ProcessTask implements asynq.Handler.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if t.Type() == task.TypeWake {
		return h.wake(ctx, t)
	}
	p, err := task.Parse(t)
	if err != nil {
		h.log.Error("refresh task rejected", zap.String("outcome", string(Permanent)), zap.Error(err))
		return err
	}
	retried, _ := asynq.GetRetryCount(ctx)
	log := h.log.With(
		zap.Int64("connection_id", p.ConnectionID),
		zap.String("integration_type", p.IntegrationType),
		zap.Int("attempt", retried+1),
	)
	prov, ok := h.markets[p.IntegrationType]
	if !ok {
		f := token.Permanent("no provider is configured for integration type %q", p.IntegrationType)
		h.recordFailure(t, f, nil)
		log.Error("refresh failed", zap.String("outcome", string(OutcomeOf(f.Class))), zap.String("reason", f.Reason))
		return fmt.Errorf("%s: %w", f.Reason, asynq.SkipRetry)
	}
	log = log.With(zap.String("provider", prov.Kind))

	start := time.Now()
	o, remaining, hadToken, err := h.refresh(ctx, t, p, prov)
	took := time.Since(start)
	if h.obs != nil {
		// A deferred attempt made no call: the lifetime left is observed
		// when the refresh really starts, not at every deferral.
		h.obs.Attempted(prov.Kind, o, took, remaining, hadToken && o != Deferred && o != Busy && o != Unwritable)
	}
	fields := []zap.Field{zap.String("outcome", string(o)), zap.Duration("duration", took)}
	if n := h.cfg.Notifier; n != nil {
		switch o {
		case Refreshed:
			n.Refreshed(ctx, p.ConnectionID, p.IntegrationType, prov.Kind)
		case Permanent:
			var f *token.Failure
			if errors.As(err, &f) {
				n.Failed(ctx, p.ConnectionID, p.IntegrationType, prov.Kind, f.Reason)
			}
		}
	}
	switch o {
	case Refreshed, NotDue, Inactive, Stale, Satisfied:
		log.Info("refresh done", fields...)
		return nil
	case Kept:
		log.Warn("the new token could not be stored; it is kept in the outbox and stored when the database takes writes (no call is made for the connection meanwhile)",
			append(fields, zap.String("reason", err.Error()))...)
		return nil
	case Unwritable:
		log.Debug("refresh put back: the database refuses writes; no call made", append(fields, zap.String("reason", err.Error()))...)
		return err
	case Permanent:
		log.Error("refresh failed permanently; not retried until credentials change, the cooldown ends or an operator retries",
			append(fields, zap.String("reason", err.Error()))...)
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case Deferred, Busy:
		log.Debug("refresh deferred; not a failure", append(fields, zap.String("reason", err.Error()))...)
		return err
	default:
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) {
			log.Info("refresh interrupted by shutdown; it goes back to the queue", fields...)
			return err
		}
		log.Warn("refresh failed; will retry", append(fields, zap.String("reason", err.Error()))...)
		if left := remaining - took; hadToken && left > 0 {
			return &expiringError{err: err, left: left}
		}
		return err
	}
}

func (h *Handler) refresh(ctx context.Context, t *asynq.Task, p task.Payload, prov Marketplace) (Outcome, time.Duration, bool, error) {
	// While the database refuses writes, no call: a token issued now could
	// not be stored. The worker waits in place (free for Redis, and it runs
	// the moment a write succeeds), then puts the task back.
	if err := h.waitWritable(ctx, prov); err != nil {
		return Unwritable, 0, false, err
	}

	// The lease comes first and the row is read once, under it: a read
	// before the lease could be stale by the time the lease is held (the
	// previous holder may store a token in between), so it would have to be
	// repeated, and a refresh would cost two primary-key reads for one. A
	// duplicate task (its connection refreshed meanwhile) costs a lease
	// round trip instead, and makes no call.
	holder, _ := asynq.GetTaskID(ctx)
	held, err := h.leases.Acquire(ctx, p.ConnectionID, holder)
	if err != nil {
		var busy *lease.BusyError
		if errors.As(err, &busy) {
			// Waiting for another path's refresh spends no retry and
			// records no failure. The holder's lease is renewed while it
			// works, so its time left says little about when it ends:
			// look again within BusyRecheck (sooner if the lease runs
			// out sooner); the read under the lease then finds the
			// token it stored, or the lease of a dead holder gone.
			return Busy, 0, false, &DeferredError{Reason: busy.Error(),
				After: min(max(busy.Remaining, 100*time.Millisecond), BusyRecheck)}
		}
		return Transient, 0, false, token.Transient("connection lease unavailable (Redis): no call made")
	}
	defer held.Release()

	// A token kept for the connection (its write refused earlier, here or
	// in a replica that died) is its newest credential: store it before
	// anything else, and make no call while it is unstored.
	if kept, ok, err := h.kept.pending(ctx, p.ConnectionID); err != nil {
		var sealed outbox.Unreadable
		if errors.As(err, &sealed) {
			// Another replica, with the key, stores it.
			return Kept, 0, false, fmt.Errorf("a token kept for the connection cannot be opened here (%s): no call made", sealed.Reason)
		}
		return Transient, 0, false, token.Transient("outbox unavailable (Redis): no call made")
	} else if ok && !h.kept.settle(ctx, kept) {
		return Kept, 0, false, fmt.Errorf("a token kept for the connection is not stored yet: no call made")
	}

	c, o, err := h.load(ctx, p, prov)
	remaining, hadToken := lifetimeLeft(c, h.cfg.Now())
	if o != "" {
		return o, remaining, hadToken, err
	}

	report, err := h.admit(ctx, p.IntegrationType, prov, c.ID, h.deadline(p, c))
	if err != nil {
		var d *DeferredError
		if errors.As(err, &d) {
			return Deferred, remaining, hadToken, err
		}
		return Transient, remaining, hadToken, err
	}
	// Never spend a credential that cannot be stored: the claim proves,
	// on the row read and on a server that takes writes, that the new
	// token can land (mysql.Store.Claim says why a write and not a flag).
	if o, err := h.claim(ctx, c); o != "" {
		report(breaker.Ignore)
		return o, remaining, hadToken, err
	}
	called := h.cfg.Now()
	tok, err := prov.Client.Refresh(ctx, c)
	report(breakerResult(ctx, err))
	if err != nil {
		var f *token.Failure
		if !errors.As(err, &f) {
			// A provider must classify; an unclassified error is treated
			// as transient, and its text is not trusted to be secret-free.
			f = token.Transient("%s call failed", prov.Kind)
			err = f
		}
		if f.Class == token.ClassPermanent {
			if h.changedSince(ctx, c) {
				// The refusal is of credentials another path (a worker
				// past an expired lease, the seller re-authorizing)
				// replaced meanwhile: the connection is fine.
				return Stale, remaining, hadToken, nil
			}
			h.recordFailure(t, f, &c)
		}
		return OutcomeOf(f.Class), remaining, hadToken, err
	}
	if tok.AccessToken == "" || tok.ExpiresAt.IsZero() {
		return Transient, remaining, hadToken, token.Transient("%s returned no usable token", prov.Kind)
	}
	if held.Lost() {
		h.log.Warn("the connection's lease expired during the call; the guarded write decides what is stored",
			zap.Int64("connection_id", c.ID))
	}

	err = h.storeToken(ctx, h.entry(p, c, tok, called), writeAhead(prov, c, tok))
	switch {
	case err == nil:
		h.scheduleNext(ctx, p, prov, tok, called)
		return Refreshed, remaining, hadToken, nil
	case errors.Is(err, token.ErrStale):
		return Stale, remaining, hadToken, nil
	default:
		return Kept, remaining, hadToken, err
	}
}

// waitWritable returns nil while the gate is open, or once it opens within
// GateWait (less than what the task's deadline leaves for the call), and
// otherwise a *DeferredError that puts the task back.
func (h *Handler) waitWritable(ctx context.Context, prov Marketplace) error {
	g := h.cfg.Gate
	if g == nil || g.Open() {
		return nil
	}
	wait := h.cfg.GateWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-prov.CallTimeout)
	}
	if g.Wait(ctx, wait) {
		return nil
	}
	reason := "the database refuses writes"
	if err := g.Err(); err != nil {
		reason = err.Error()
	}
	return &DeferredError{Reason: reason + ": no call made", After: time.Second}
}

// claim runs the store's claim and returns a non-empty outcome when no call
// may be made: Unwritable (the database refuses the write; the gate
// closes), Deferred (the row changed since it was read: the task comes back
// at once and reads it again), or the error's class otherwise.
func (h *Handler) claim(ctx context.Context, c token.Connection) (Outcome, error) {
	err := h.store.Claim(ctx, c)
	if h.cfg.Gate != nil {
		h.cfg.Gate.Report(err)
	}
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, token.ErrStale):
		return Deferred, &DeferredError{Reason: "the row changed between the read and the claim: read it again", After: 100 * time.Millisecond}
	case errors.Is(err, token.ErrUnwritable):
		return Unwritable, &DeferredError{Reason: err.Error() + ": no call made", After: time.Second}
	default:
		return StoreError, err
	}
}

// load reads the connection and decides whether it still needs a call. It
// returns a non-empty outcome when it does not (or cannot be read).
//
// A scanned task needs a call while the connection is due. An on-demand
// (forced) task is satisfied by any refresh that completed after it was
// accepted: its payload holds the expiry the API read, so a stored expiry
// that differs from it is a token stored since, and no call is made.
func (h *Handler) load(ctx context.Context, p task.Payload, prov Marketplace) (token.Connection, Outcome, error) {
	c, err := h.store.Load(ctx, p.ConnectionID)
	if errors.Is(err, token.ErrNotFound) {
		return c, Inactive, nil
	}
	if err != nil {
		if errors.Is(err, token.ErrUnwritable) && h.cfg.Gate != nil {
			// An unreachable database takes no write either: close the
			// gate, put the task back, spend no retry.
			h.cfg.Gate.Report(err)
			return c, Unwritable, &DeferredError{Reason: err.Error() + ": no call made", After: time.Second}
		}
		return c, StoreError, err
	}
	c.IntegrationType = p.IntegrationType
	if p.Forced {
		if !task.SameExpiry(c.ExpiresAt, p.DueExpiry) {
			return c, Satisfied, nil
		}
		return c, "", nil
	}
	if movedOn(p.DueExpiry, c.ExpiresAt) || !h.due(ctx, c, h.cfg.Now(), prov.Target) {
		return c, NotDue, nil
	}
	return c, "", nil
}

// lifetimeLeft is the stored token's lifetime left at now (negative:
// expired), and whether there is a token.
func lifetimeLeft(c token.Connection, now time.Time) (time.Duration, bool) {
	if c.ExpiresAt == nil || c.ExpiresAt.IsZero() {
		return 0, false
	}
	return c.ExpiresAt.Sub(now), true
}

// changedSince reports whether the row no longer holds the refresh token or
// expiry read in c. A read that fails says nothing, and the refusal stands.
func (h *Handler) changedSince(ctx context.Context, c token.Connection) bool {
	now, err := h.store.Load(context.WithoutCancel(ctx), c.ID)
	if errors.Is(err, token.ErrNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	return now.RefreshToken != c.RefreshToken || !task.SameExpiry(now.ExpiresAt, c.ExpiresAt)
}

// admit holds the call back while the marketplace's breaker is open, and
// waits for a slot of its rate limit. It returns the function that reports
// the call's result to the breaker, or a *DeferredError when the task should come
// back later.
func (h *Handler) admit(ctx context.Context, integrationType string, prov Marketplace, id int64, deadline *time.Time) (func(breaker.Result), error) {
	report := func(breaker.Result) {}
	if prov.Breaker != nil {
		done, wait := prov.Breaker.Acquire()
		if done == nil {
			return nil, &DeferredError{Reason: fmt.Sprintf("%s circuit breaker is open", prov.Kind), After: wait}
		}
		report = done
	}
	if prov.Limiter == nil {
		return report, nil
	}
	if err := h.waitForSlot(ctx, integrationType, prov, id, deadline); err != nil {
		report(breaker.Ignore)
		return nil, err
	}
	return report, nil
}

// deadline is the time by which the connection's call must be made, which
// orders the marketplace's backlog: its token's expiry. An on-demand
// (forced) refresh has the earliest deadline there is, a moment from now: it
// exists because a service was just refused the token (or an operator asked),
// so the seller's orders have stopped already, and it is why the urgent
// queue exists at all.
func (h *Handler) deadline(p task.Payload, c token.Connection) *time.Time {
	if p.Forced {
		now := h.cfg.Now().Add(time.Millisecond)
		return &now
	}
	return c.ExpiresAt
}

// waitForSlot waits up to RateWait for a slot of the marketplace's rate
// limit. With a Backlog, only the connections whose tokens expire first
// (the backlog's window) wait in place, each taking its turn in order of
// expiry; the rest are put back until about when their turn comes. It
// returns nil with a slot taken, or a *DeferredError.
func (h *Handler) waitForSlot(ctx context.Context, integrationType string, prov Marketplace, id int64, deadline *time.Time) error {
	rate := prov.Limiter.PerSecond()
	if prov.Backlog == nil {
		waiting := h.waiting[integrationType]
		n := waiting.Add(1)
		defer waiting.Add(-1)
		if maxWaiting := int64(math.Ceil(rate * h.cfg.RateWait.Seconds())); n > max(maxWaiting, 1) {
			// More workers already wait than slots come in RateWait: come
			// back about when this one's turn would be.
			return &DeferredError{Reason: fmt.Sprintf("%s rate limit (%g/s): %d calls waiting", prov.Kind, rate, n-1),
				After: time.Duration(float64(n-1) / rate * float64(time.Second))}
		}
	}
	budget := h.cfg.RateWait
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl)-prov.CallTimeout)
	}
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for {
		var stagger time.Duration
		if prov.Backlog != nil {
			pl, err := prov.Backlog.Place(ctx, id, deadline, h.cfg.Now(), max(budget-time.Since(start), 0))
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return token.Transient("%s rate limiter unavailable (Redis): no call made", prov.Kind)
			}
			if pl.After > 0 {
				// Not this one's turn. But a slot free at this instant is
				// one nobody ahead is there to take (the head is put back
				// or gone, or waits in place past it): take it rather
				// than let the rate go unused. A head waiting in place
				// takes its slot the moment it frees, so this overtakes
				// it only in that instant.
				if wait, err := prov.Limiter.Take(ctx); err == nil && wait == 0 {
					h.leave(ctx, prov, id)
					return nil
				}
				return &DeferredError{Reason: fmt.Sprintf("%s rate limit (%g/s): %d calls ahead, by expiry", prov.Kind, rate, pl.Rank),
					After: pl.After}
			}
			// Inside the window, the head wakes first when a slot frees:
			// each place behind it waits a little longer (less than one
			// slot's interval in all), so the order holds among the
			// waiters too, not only between them and the rest.
			stagger = time.Duration(pl.Rank) * interval / time.Duration(max(pl.Window, 1))
		}
		wait, err := prov.Limiter.Take(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return token.Transient("%s rate limiter unavailable (Redis): no call made", prov.Kind)
		}
		if wait == 0 {
			h.leave(ctx, prov, id)
			return nil
		}
		if time.Since(start)+wait > budget {
			return &DeferredError{Reason: fmt.Sprintf("%s rate limit (%g/s): no slot within %s", prov.Kind, rate, h.cfg.RateWait),
				After: wait}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + stagger):
		}
	}
}

// leave takes the connection out of its marketplace's backlog: it has its
// slot.
func (h *Handler) leave(ctx context.Context, prov Marketplace, id int64) {
	if prov.Backlog == nil {
		return
	}
	if err := prov.Backlog.Leave(context.WithoutCancel(ctx), id); err != nil {
		// The entry expires by itself (backlog.Grace).
		h.log.Debug("could not leave the backlog", zap.Int64("connection_id", id), zap.Error(err))
	}
}

// breakerResult is what a call's outcome says about the marketplace: a
// transient failure counts against it; an answer, even a rejection,
// shows it is up; a failure before any answer (malformed inputFields, a
// shutdown) says nothing.
func breakerResult(ctx context.Context, err error) breaker.Result {
	var f *token.Failure
	switch {
	case err == nil:
		return breaker.Success
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		return breaker.Ignore
	case errors.As(err, &f) && f.Class == token.ClassPermanent:
		if f.Status != 0 {
			return breaker.Success
		}
		return breaker.Ignore
	default:
		return breaker.Failure
	}
}

// storeToken writes a token just obtained. With ahead (writeAhead: a
// rotated refresh token the next call needs) it is first written to the
// durable outbox (keep.go), so that no instant exists in which a SIGKILL
// loses the connection's credential. A write the
// database refuses (token.ErrUnwritable) closes the gate and the token is
// kept in the outbox at once: retrying in place would only hold a worker,
// and the keeper stores it the moment a write succeeds. A row's own error
// (a deadlock, a lock wait) is retried in place with backoff for up to
// SaveRetryFor, then kept too. It returns nil when the row holds the token,
// token.ErrStale when it holds a newer one, and otherwise the write's error
// with the token kept.
//
// The writes are detached from ctx's cancellation (a task deadline,
// DRAIN_TIMEOUT on SIGTERM): a token in hand is stored or kept whatever
// happens to its task, and Wait lets the process see that through before
// exiting.
func (h *Handler) storeToken(ctx context.Context, e outbox.Entry, ahead bool) error {
	h.writes.Add(1)
	defer h.writes.Add(-1)
	ctx = context.WithoutCancel(ctx)
	ahead = ahead && h.kept.putAhead(ctx, e)
	err := h.save(ctx, e.Read, e.Token)
	if h.cfg.Gate != nil {
		h.cfg.Gate.Report(err)
	}
	if err == nil || errors.Is(err, token.ErrStale) {
		if ahead {
			h.kept.forget(ctx, e)
		}
		return err
	}
	durable := h.kept.keep(ctx, e, ahead)
	if !durable {
		h.log.Warn("the token in hand is kept in this process's memory only (no outbox key, or Redis refused it): it is lost if the process is killed",
			zap.Int64("connection_id", e.ConnectionID))
	}
	return err
}

// save retries a write failing with a row's own error with backoff for up
// to SaveRetryFor; a write the database refuses returns at once.
func (h *Handler) save(ctx context.Context, read token.Connection, tok token.Token) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SaveRetryFor)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		err := h.store.Save(ctx, read, tok)
		if err == nil || errors.Is(err, token.ErrStale) || errors.Is(err, token.ErrUnwritable) {
			return err
		}
		if dl, _ := ctx.Deadline(); time.Now().Add(delay).After(dl) {
			return err
		}
		h.log.Warn("storing the new token failed; retrying the write",
			zap.Int64("connection_id", read.ID), zap.Error(err))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// recordFailure leaves the permanent failure (its class and reason) and the
// credentials' fingerprint on the task, so the scanner can try again when
// they change. c is nil when the failure is not the connection's (no
// provider).
func (h *Handler) recordFailure(t *asynq.Task, failure *token.Failure, c *token.Connection) {
	f := task.Record(failure, h.cfg.Now().UTC())
	if c != nil {
		f.Credentials = h.cfg.Fingerprint.Of(c.InputFields, c.RefreshToken)
	}
	if w := t.ResultWriter(); w != nil {
		if _, err := w.Write(f.Marshal()); err != nil {
			h.log.Warn("could not record the failure on the task", zap.Error(err))
		}
	}
}
