package refresh

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// A token the marketplace has issued is the seller's credential until it is
// stored: above all a rotated refresh token, whose issue retired the one in
// the row. So a token whose write the database refuses is never dropped: it
// is kept in an outbox (internal/outbox) and stored by the keeper as soon as
// the database takes writes again, for as long as it can be useful (see
// keepUntil). No marketplace call is made for a connection while its
// outbox holds a token: the handler looks there first, under the
// connection's lease.
//
// The outbox is durable when OUTBOX_KEY is set: entries live in Redis,
// sealed with AES-256-GCM, so they survive SIGKILL and any replica stores
// them. A rotated refresh token that the marketplace's next call needs
// (OAuth) is written there before its first write (write-ahead), so no
// instant exists in which a SIGKILL loses it; any other token goes there
// only when its write fails, because losing it costs one more call, not a
// credential: a token without a new refresh token, or one of a marketplace
// whose login is inputFields (Ajio answers with a refresh token it never
// asks for again: Marketplace.IgnoresRefreshToken). Without OUTBOX_KEY the
// outbox is this process's memory: it survives a database outage of any
// length while the process lives, and SIGTERM waits for it up to its drain
// limit, but SIGKILL loses it. A durable Put that fails (Redis down) falls
// back to memory.

// KeepInterval is how often the keeper tries to store the kept tokens.
const KeepInterval = time.Second

// KeptObserver hears how many tokens the outbox holds (a gauge) and of
// every kept token stored or dropped (counters). An Observer may implement
// it.
type KeptObserver interface {
	KeptTokens(n int)
	KeptTokenDone(result string) // "stored", "superseded", "expired"
}

type keeper struct {
	h       *Handler
	durable outbox.Outbox  // nil without OUTBOX_KEY
	sealed  *outbox.Sealed // without OUTBOX_KEY: what other replicas sealed
	local   *outbox.Memory

	mu          sync.Mutex
	lastWarning time.Time // of an entry this process cannot open
}

// unreadableEvery is how often a process says it cannot open entries of the
// outbox (another OUTBOX_KEY, or none): once is enough to act on, and the
// sweep comes every second.
const unreadableEvery = time.Minute

// warnUnreadable reports whether the warning about entries this process
// cannot open is due again.
func (k *keeper) warnUnreadable() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if now := time.Now(); now.Sub(k.lastWarning) >= unreadableEvery {
		k.lastWarning = now
		return true
	}
	return false
}

// keepUntil is how long a token is worth keeping: a new refresh token for
// as long as the row does not move on (it may be the credential; the
// connection is lost without it), any other token until its access token
// expires.
func keepUntil(read token.Connection, tok token.Token) time.Time {
	if rotates(read, tok) {
		return time.Time{}
	}
	return tok.ExpiresAt
}

// writeAhead reports whether a token just obtained goes to the durable
// outbox before its first write: a new refresh token that the
// marketplace's next call needs (OAuth rotation). A login marketplace's
// (Marketplace.IgnoresRefreshToken) is never presented again, so losing it
// to a SIGKILL before the write costs one more call, not the connection.
func writeAhead(prov Marketplace, read token.Connection, tok token.Token) bool {
	return !prov.IgnoresRefreshToken && rotates(read, tok)
}

// rotates reports whether tok carries a new refresh token, retiring the
// stored one.
func rotates(read token.Connection, tok token.Token) bool {
	return tok.RefreshToken != "" && tok.RefreshToken != read.RefreshToken
}

func (h *Handler) entry(p task.Payload, read token.Connection, tok token.Token, called time.Time) outbox.Entry {
	return outbox.Entry{
		ConnectionID: p.ConnectionID, IntegrationType: p.IntegrationType, Token: tok,
		Read:     token.Connection{ID: read.ID, RefreshToken: read.RefreshToken, ExpiresAt: read.ExpiresAt},
		Obtained: called.UTC(), Until: keepUntil(read, tok),
	}
}

// putAhead writes a rotated refresh token to the durable outbox before its
// first write, and reports whether it did.
func (k *keeper) putAhead(ctx context.Context, e outbox.Entry) bool {
	if k.durable == nil {
		return false
	}
	if err := k.durable.Put(ctx, e); err != nil {
		k.h.log.Warn("could not write the rotated refresh token ahead to the outbox; storing it directly",
			zap.Int64("connection_id", e.ConnectionID), zap.Error(err))
		return false
	}
	return true
}

// keep puts a token whose write failed in the outbox (durable when it can,
// else memory) and reports whether the durable one has it.
func (k *keeper) keep(ctx context.Context, e outbox.Entry, ahead bool) bool {
	if ahead {
		return true
	}
	if k.durable != nil {
		err := k.durable.Put(ctx, e)
		if err == nil {
			return true
		}
		k.h.log.Warn("could not put the token in hand in the durable outbox; keeping it in memory",
			zap.Int64("connection_id", e.ConnectionID), zap.Error(err))
	}
	_ = k.local.Put(ctx, e)
	return false
}

// forget removes an entry once the row holds its token (or a newer one).
func (k *keeper) forget(ctx context.Context, e outbox.Entry) {
	if k.durable != nil {
		if _, err := k.durable.Delete(ctx, e); err != nil {
			// Left behind, it is stored again (a no-op: the row holds
			// it or a newer token) and removed by the next sweep.
			k.h.log.Warn("could not remove a stored token from the outbox", zap.Int64("connection_id", e.ConnectionID), zap.Error(err))
		}
	}
	_, _ = k.local.Delete(ctx, e)
}

// pending returns the connection's kept token, if any: from memory first,
// then the durable outbox.
func (k *keeper) pending(ctx context.Context, id int64) (outbox.Entry, bool, error) {
	if e, ok, _ := k.local.Get(ctx, id); ok {
		return e, true, nil
	}
	if k.durable == nil {
		if k.sealed == nil {
			return outbox.Entry{}, false, nil
		}
		// A replica with the key sealed a token for the connection: it is
		// the newest credential, so no call, though this one cannot store it.
		has, err := k.sealed.Has(ctx, id)
		if err != nil || !has {
			return outbox.Entry{}, false, err
		}
		return outbox.Entry{}, false, outbox.Unreadable{ConnectionID: id, Reason: "sealed by a replica with an outbox key; this one has none"}
	}
	has, err := k.durable.Has(ctx, id)
	if err != nil || !has {
		return outbox.Entry{}, false, err
	}
	return k.durable.Get(ctx, id)
}

// settle tries to store a kept token; the caller holds the connection's
// lease. It reports whether the entry is done with (stored, superseded by a
// newer token, or expired).
func (k *keeper) settle(ctx context.Context, e outbox.Entry) bool {
	h := k.h
	log := h.log.With(zap.Int64("connection_id", e.ConnectionID), zap.String("integration_type", e.IntegrationType))
	if !e.Until.IsZero() && !h.cfg.Now().Before(e.Until) {
		log.Warn("a kept token expired before the database took it; the connection is refreshed again when due")
		k.forget(ctx, e)
		k.done("expired")
		return true
	}
	err := h.store.Save(context.WithoutCancel(ctx), e.Read, e.Token)
	if h.cfg.Gate != nil {
		h.cfg.Gate.Report(err)
	}
	switch {
	case err == nil:
		log.Info("kept token stored", zap.Duration("kept_for", h.cfg.Now().Sub(e.Obtained).Round(time.Millisecond)))
		k.forget(ctx, e)
		k.done("stored")
		p := task.Payload{ConnectionID: e.ConnectionID, IntegrationType: e.IntegrationType}
		if prov, ok := h.markets[e.IntegrationType]; ok {
			h.scheduleNext(ctx, p, prov, e.Token, e.Obtained)
			if n := h.cfg.Notifier; n != nil {
				n.Refreshed(ctx, e.ConnectionID, e.IntegrationType, prov.Kind)
			}
		}
		return true
	case errors.Is(err, token.ErrStale):
		log.Info("a kept token is superseded: the row holds it or a newer token")
		k.forget(ctx, e)
		k.done("superseded")
		return true
	default:
		log.Debug("a kept token could not be stored yet", zap.Error(err))
		return false
	}
}

func (k *keeper) done(result string) {
	if o, ok := k.h.obs.(KeptObserver); ok {
		o.KeptTokenDone(result)
	}
}

// entries returns every kept token this process can see, memory first.
func (k *keeper) entries(ctx context.Context) ([]outbox.Entry, error) {
	all, _, err := k.local.All(ctx)
	if err != nil {
		return all, err
	}
	if k.durable == nil {
		if k.sealed == nil {
			return all, nil
		}
		n, err := k.sealed.Len(ctx)
		if err == nil && n > 0 && k.warnUnreadable() {
			k.h.log.Error("the outbox in Redis holds tokens sealed by a replica with an outbox key, and this one has none: it cannot store them and makes no call for their connections; give every replica the same outbox key",
				zap.Int("kept_tokens", n))
		}
		return all, err
	}
	n, err := k.durable.Len(ctx)
	if err != nil || n == 0 {
		return all, err
	}
	durable, unreadable, err := k.durable.All(ctx)
	if len(unreadable) > 0 && k.warnUnreadable() {
		for _, u := range unreadable {
			k.h.log.Error("a kept token in the outbox cannot be opened here (the outbox key differs, or the entry is corrupt); left for a replica that can",
				zap.Int64("connection_id", u.ConnectionID), zap.String("reason", u.Reason))
		}
	}
	return append(all, durable...), err
}

// sweep tries to store every kept token once, each under its connection's
// lease (a connection whose lease another refresh holds waits for the next
// sweep; that refresh settles it itself). It returns how many remain.
func (k *keeper) sweep(ctx context.Context) int {
	all, err := k.entries(ctx)
	if err != nil {
		k.h.log.Warn("could not read the outbox", zap.Error(err))
	}
	left := 0
	for _, e := range all {
		if ctx.Err() != nil {
			return len(all)
		}
		if g := k.h.cfg.Gate; g != nil && !g.Open() {
			left++
			continue
		}
		held, err := k.h.leases.Acquire(ctx, e.ConnectionID, "outbox")
		if err != nil {
			var busy *lease.BusyError
			if !errors.As(err, &busy) {
				k.h.log.Warn("could not take a connection's lease to store its kept token", zap.Int64("connection_id", e.ConnectionID), zap.Error(err))
			}
			left++
			continue
		}
		if !k.settle(ctx, e) {
			left++
		}
		held.Release()
	}
	if k.durable == nil && k.sealed != nil {
		// Sealed entries this process cannot open are kept tokens too.
		if n, err := k.sealed.Len(ctx); err == nil {
			left += n
		}
	}
	if o, ok := k.h.obs.(KeptObserver); ok {
		o.KeptTokens(left)
	}
	return left
}

// Keep stores the kept tokens every KeepInterval until ctx ends (run it
// beside the workers; a process that starts sweeps at once, so it replays
// what a killed one left in the durable outbox before any call).
func (h *Handler) Keep(ctx context.Context) {
	for {
		h.kept.sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(KeepInterval):
		}
	}
}

// Replay tries once to store every kept token (at start, before the
// workers run); it returns how many remain.
func (h *Handler) Replay(ctx context.Context) int { return h.kept.sweep(ctx) }

// Unstored is what the outbox still holds: the connection ids kept in this
// process's memory (lost if it exits) and how many the durable outbox holds
// (any replica stores them). Call it at shutdown, after Wait, to say so.
func (h *Handler) Unstored(ctx context.Context) (inMemory []int64, durable int, err error) {
	local, _, _ := h.kept.local.All(ctx)
	for _, e := range local {
		inMemory = append(inMemory, e.ConnectionID)
	}
	if h.kept.durable != nil {
		durable, err = h.kept.durable.Len(ctx)
	}
	return inMemory, durable, err
}
