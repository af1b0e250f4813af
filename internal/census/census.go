// Package census counts every configured provider's active connections by
// the state of their token (fresh, due, expired) and the failing ones (an
// archived refresh). The refresher's summary API answers with it, and one
// long-running process of the fleet takes it periodically for the gauges,
// whose expired count must stay at 0 (see Lead).
package census

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eshopbox/token-refresher/internal/lease"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Store counts connections by token state.
type Store interface {
	CountStates(ctx context.Context, integrationType string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error)
}

// Syncer is a Store that keeps state between counts (internal/dueset): it
// is synced at the start of every census, before its CountStates calls.
type Syncer interface {
	Sync(ctx context.Context, now time.Time) error
}

// Archive lists the archived (failing) refreshes.
type Archive interface {
	ListArchived() (map[int64]task.Archived, error)
}

// Count is one provider's connections at one moment. Fresh, Due and Expired
// split the active connections; Failing (an archived refresh: credentials
// rejected, malformed inputFields) overlaps them, and ExpiredFailing is the
// overlap of Expired and Failing: Expired - ExpiredFailing is what the
// service failed to keep fresh, and must stay 0.
type Count struct {
	IntegrationType string `json:"integration_type"`
	Provider        string `json:"provider"`
	Active          int    `json:"active"`
	Fresh           int    `json:"fresh"`
	Due             int    `json:"due"`
	Expired         int    `json:"expired"`
	Failing         int    `json:"failing"`
	ExpiredFailing  int    `json:"expired_failing"`
}

// Census takes counts.
type Census struct {
	store   Store
	archive Archive
	targets []token.Target
	now     func() time.Time
}

// New returns a census of targets. archive may be nil (no failing counts).
func New(store Store, archive Archive, targets []token.Target) *Census {
	return &Census{store: store, archive: archive, targets: targets, now: time.Now}
}

// Take counts every target. A target whose count fails is left out and its
// error joined to the returned one, so one bad integration type does not
// hide the others.
func (c *Census) Take(ctx context.Context) ([]Count, error) {
	failing := map[string]int{}
	failingIDs := map[string]map[int64]bool{}
	var errs []error
	if c.archive != nil {
		archived, err := c.archive.ListArchived()
		if err != nil {
			errs = append(errs, err)
		}
		for id, a := range archived {
			failing[a.IntegrationType]++
			if failingIDs[a.IntegrationType] == nil {
				failingIDs[a.IntegrationType] = map[int64]bool{}
			}
			failingIDs[a.IntegrationType][id] = true
		}
	}
	now := c.now()
	if sy, ok := c.store.(Syncer); ok {
		if err := sy.Sync(ctx, now); err != nil {
			return nil, errors.Join(append(errs, fmt.Errorf("census: %w", err))...)
		}
	}
	out := make([]Count, 0, len(c.targets))
	for _, tg := range c.targets {
		st, err := c.store.CountStates(ctx, tg.IntegrationType, now, token.DueBefore(now, tg.RefreshBefore), failingIDs[tg.IntegrationType])
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return out, err
			}
			errs = append(errs, fmt.Errorf("census of integration type %s: %w", tg.IntegrationType, err))
			continue
		}
		out = append(out, Count{
			IntegrationType: tg.IntegrationType, Provider: tg.Kind, Active: st.Active(),
			Fresh: st.Fresh, Due: st.Due, Expired: st.Expired, Failing: failing[tg.IntegrationType],
			ExpiredFailing: st.ExpiredFailing,
		})
	}
	return out, errors.Join(errs...)
}

// Observer is told every count (the gauges).
type Observer interface {
	Counted(counts []Count)
}

// Watch takes a census now and then every interval until ctx ends, telling
// obs. A failed census is logged; the gauges keep their last values for the
// targets it could not count. The first census, taken while the first scan
// runs, sets the gauges but does not warn about expired tokens: at start-up
// they are expected (tokens lapsed while nothing ran) and the scan is
// enqueuing their refreshes. From the second census on, an expired token
// that is not failing is a warning.
func (c *Census) Watch(ctx context.Context, interval time.Duration, obs Observer, log *zap.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for first := true; ; first = false {
		c.runOnce(ctx, obs, log, !first)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce is one turn of Watch after the first: it warns about expired
// tokens that are not failing.
func (c *Census) RunOnce(ctx context.Context, obs Observer, log *zap.Logger) {
	c.runOnce(ctx, obs, log, true)
}

func (c *Census) runOnce(ctx context.Context, obs Observer, log *zap.Logger, warnExpired bool) {
	counts, err := c.Take(ctx)
	if err != nil && ctx.Err() == nil {
		log.Warn("census of connections failed", zap.Error(err))
	}
	if len(counts) > 0 {
		obs.Counted(counts)
	}
	for _, n := range counts {
		if lapsed := n.Expired - n.ExpiredFailing; lapsed > 0 && warnExpired {
			log.Warn("active connections hold an expired token that is not waiting for new credentials",
				zap.String("provider", n.Provider), zap.String("integration_type", n.IntegrationType),
				zap.Int("expired", lapsed))
		}
	}
}

// Gauges is an Observer that can also withdraw every value it exposes.
type Gauges interface {
	Observer
	// Forget drops the values, so /metrics serves none of them.
	Forget()
}

// LeaseRole names the fleet-wide lease of the census gauges.
const LeaseRole = "census"

// Lead takes the census gauges fleet-wide: every long-running replica
// (refreshers, a long-running scanner) calls it, and only the holder of the
// census lease (internal/lease, SET NX PX renewed every TTL/3) takes the
// census every interval and sets gauges. The others ask for the lease every
// retry and expose no census gauge at all.
//
// Why only the holder exposes them: a gauge served by a replica that no
// longer computes it would be an old number presented as current, and
// Prometheus cannot tell it from a fresh one. So a holder that loses the
// lease (a renewal found it gone, Redis kept it away past the TTL) or stops
// calls Forget at once, and its series go stale in Prometheus; the alerts
// aggregate with max by (integration_type, provider), which does not care
// which instance or job serves them. Why in every replica and not only in
// the scanner: a deployment may run the scanner as a --once cron job, which
// serves no /metrics, and the expired gauge is the one that must stay 0.
//
// Lead returns when ctx ends, releasing the lease so another replica takes
// over at its next try rather than after the TTL. holder names this process
// in Redis for operators.
func (c *Census) Lead(ctx context.Context, leases *lease.Manager, holder string, interval, retry time.Duration,
	g Gauges, log *zap.Logger) {
	for ctx.Err() == nil {
		held, err := leases.TryLead(ctx, LeaseRole, holder)
		if err != nil && ctx.Err() == nil {
			log.Warn("cannot ask for the census lease", zap.Error(err))
		}
		if held != nil {
			log.Info("took the census lease: this process serves the census gauges",
				zap.Duration("interval", interval))
			term, end := context.WithCancel(ctx)
			go func() {
				select {
				case <-held.Done():
				case <-term.Done():
				}
				end()
			}()
			c.Watch(term, interval, g, log)
			end()
			g.Forget()
			held.Release()
			if ctx.Err() == nil {
				log.Warn("lost the census lease: another replica serves the census gauges")
			}
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}
