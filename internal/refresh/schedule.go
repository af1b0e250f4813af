package refresh

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Scheduler refreshes a stored token on its own clock when its lifetime
// moves its refresh point (task.Queue): when such a token is stored, its
// lifetime is recorded and a wake-up is scheduled in asynq for
// token.RefreshAt. A token whose lifetime leaves refresh_before whole
// (token.Lead) gets neither: the scan finds it when it enters
// refresh_before, and it costs Redis nothing meanwhile. The scan is also the
// backstop that finds what Redis lost or what was never scheduled.
type Scheduler interface {
	// Schedule records the lifetime of the generation p.DueExpiry and
	// schedules its refresh at at.
	Schedule(ctx context.Context, p task.Payload, lifetime time.Duration, at time.Time) error
	// Generations returns the recorded generations of connections.
	Generations(ctx context.Context, ids []int64) (map[int64]task.Generation, error)
	// Wake enqueues the refresh a wake-up task stands for.
	Wake(ctx context.Context, t *asynq.Task) error
}

// LifetimeObserver is told about a token whose lifetime is shorter than its
// provider's refresh_before (metrics). An Observer may implement it.
type LifetimeObserver interface {
	ShortLifetime(kind string)
}

// Jitter returns a random time in [0, token.Spread(lead)]: how much earlier
// than its refresh point a scheduled refresh runs.
func Jitter(lead time.Duration) time.Duration {
	ceiling := token.Spread(lead)
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// wake handles a wake-up task: it enqueues the connection's refresh.
func (h *Handler) wake(ctx context.Context, t *asynq.Task) error {
	if h.cfg.Scheduler == nil {
		return fmt.Errorf("a scheduled refresh reached a refresher without a scheduler: %w", asynq.SkipRetry)
	}
	return h.cfg.Scheduler.Wake(ctx, t)
}

// lifetime is the recorded lifetime of the connection's stored token; 0
// when unknown (no scheduler, no record, another generation, Redis down:
// then refresh_before alone decides, as before).
func (h *Handler) lifetime(ctx context.Context, c token.Connection) time.Duration {
	if h.cfg.Scheduler == nil || c.ExpiresAt == nil {
		return 0
	}
	gens, err := h.cfg.Scheduler.Generations(ctx, []int64{c.ID})
	if err != nil {
		h.log.Debug("token lifetime unknown (Redis)", zap.Int64("connection_id", c.ID), zap.Error(err))
		return 0
	}
	return gens[c.ID].Of(c.ExpiresAt)
}

// due is token.Due as the handler applies it, reading the recorded
// lifetime only when it can change the answer: a missing or expired token is
// due whatever its lifetime, one outside refresh_before (plus the largest
// jitter) is not, and one of a marketplace whose every token lives at
// least token.LeadDivisor × refresh_before has no record to read
// (token.Target.OwnClock): refresh_before decides, at no Redis command. A
// scheduled refresh may run up to token.Spread before its refresh point (it
// was jittered early); without a recorded lifetime no refresh was
// scheduled, and refresh_before alone decides.
func (h *Handler) due(ctx context.Context, c token.Connection, now time.Time, tg token.Target) bool {
	if c.ExpiresAt == nil || c.ExpiresAt.IsZero() || !c.ExpiresAt.After(now) {
		return true
	}
	if !token.Due(c.ExpiresAt, now.Add(token.Spread(tg.RefreshBefore)), tg.RefreshBefore, 0) {
		return false
	}
	var lifetime, spread time.Duration
	if tg.OwnClock() {
		lifetime = h.lifetime(ctx, c)
	}
	if lifetime > 0 {
		spread = token.Spread(token.Lead(tg.RefreshBefore, lifetime))
	}
	return token.Due(c.ExpiresAt, now.Add(spread), tg.RefreshBefore, lifetime)
}

// movedOn reports whether the row holds another token than the one the
// task was made for: someone stored a newer one meanwhile, and this task
// (a late wake-up, a scan of the old row) has nothing left to do.
func movedOn(taskExpiry, rowExpiry *time.Time) bool {
	if taskExpiry == nil || taskExpiry.IsZero() {
		return false
	}
	return !task.SameExpiry(taskExpiry, rowExpiry)
}

// scheduleNext schedules the refresh of a token just stored whose lifetime
// moves its refresh point: one that lives shorter than token.LeadDivisor ×
// refresh_before is refreshed a share of its lifetime before expiry
// (token.RefreshAt), less a little jitter (early, never late:
// token.Spread), by a wake-up scheduled in asynq, and its lifetime is
// recorded for the scan and the handler to apply (token.Due).
//
// Any other token is left to the scan, which finds it when it enters
// refresh_before, exactly where its wake-up would have woken it: a wake-up
// and its lifetime record would cost 701 bytes of Redis per connection,
// the fleet over, two commands now and three when it runs, to move nothing
// (e2e TestRedisCostPerRefresh). The scan interval is validated to be well
// under refresh_before, so the token still gets nearly its whole lead.
//
// It warns about a marketplace whose tokens live shorter than
// refresh_before. obtained is when the call was made; a failure to
// schedule is logged, not returned: the scan still finds the token (at
// refresh_before: earlier than its own clock, never later).
func (h *Handler) scheduleNext(ctx context.Context, p task.Payload, prov Marketplace, tok token.Token, obtained time.Time) {
	lifetime := tok.ExpiresAt.Sub(obtained.Truncate(time.Second))
	if lifetime <= 0 {
		return
	}
	log := h.log.With(zap.Int64("connection_id", p.ConnectionID), zap.String("provider", prov.Kind))
	if lifetime < prov.RefreshBefore {
		log.Warn("the marketplace issues tokens that live shorter than refresh_before; each is refreshed a third of its lifetime before expiry",
			zap.Duration("lifetime", lifetime), zap.Duration("refresh_before", prov.RefreshBefore))
		if lo, ok := h.obs.(LifetimeObserver); ok {
			lo.ShortLifetime(prov.Kind)
		}
	}
	lead := token.Lead(prov.RefreshBefore, lifetime)
	if h.cfg.Scheduler == nil || lead == prov.RefreshBefore {
		return
	}
	at := token.RefreshAt(tok.ExpiresAt, prov.RefreshBefore, lifetime).Add(-Jitter(lead))
	exp := tok.ExpiresAt
	next := task.Payload{ConnectionID: p.ConnectionID, IntegrationType: p.IntegrationType, DueExpiry: &exp}
	if err := h.cfg.Scheduler.Schedule(ctx, next, lifetime, at); err != nil {
		log.Warn("could not schedule the next refresh; the scan will find it", zap.Error(err))
	}
}
