// Package scan finds the connections whose token expires soon and enqueues
// one refresh task per connection. RunOnce is one pass over every configured
// integration type; Run repeats it every interval.
package scan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Store is the part of the MySQL store the scanner reads.
type Store interface {
	ScanDue(ctx context.Context, integrationType string, dueBefore time.Time, fn func([]token.DueConnection) error) (token.ScanStats, error)
	CredentialsChanged(ctx context.Context, recorded map[int64]string) (map[int64]bool, error)
}

// Syncer is a Store that keeps state between scans (internal/dueset): it
// is synced at the start of every scan, before its ScanDue calls.
type Syncer interface {
	Sync(ctx context.Context, now time.Time) error
}

// Queue is where the scanner puts refresh tasks.
type Queue interface {
	Enqueue(ctx context.Context, p task.Payload) (bool, error)
	Retry(ctx context.Context, p task.Payload) (bool, error)
	ListArchived() (map[int64]task.Archived, error)
}

// ShardChecker is a Queue spread over shards (task.Queue): each scan first
// checks that the number of shards recorded in Redis is its own, and
// records it again when Redis lost it (a master restarted empty), so a
// process started later with another number is still refused.
type ShardChecker interface {
	CheckShards(ctx context.Context) error
}

// Config of a scanner. Zero values take the defaults.
type Config struct {
	Targets []token.Target
	// Interval between scans in Run (default DefaultInterval).
	Interval time.Duration
	// Cooldown before a permanently failed connection is tried again with
	// unchanged credentials (default DefaultFailureCooldown), counted from
	// task.FailedAt.
	Cooldown time.Duration
	// Concurrency is how many enqueues run at once (default
	// DefaultConcurrency): asynq has no batch enqueue, so parallel round
	// trips are the lever.
	Concurrency int
	// DryRun prints the due connections to DryRunOut and enqueues nothing.
	DryRun    bool
	DryRunOut io.Writer
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// DefaultFailureCooldown is FAILURE_COOLDOWN's default: how long a
// permanently failed connection waits before it is tried again with
// unchanged credentials. The scan applies it; the API tells from it when
// that will be.
const DefaultFailureCooldown = time.Hour

// The other defaults of Config, SCAN_INTERVAL's and SCAN_CONCURRENCY's.
const (
	DefaultInterval    = time.Minute
	DefaultConcurrency = 16
)

func (c *Config) defaults() {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Cooldown <= 0 {
		c.Cooldown = DefaultFailureCooldown
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DryRunOut == nil {
		c.DryRunOut = io.Discard
	}
}

// Result counts one scan of one integration type.
type Result struct {
	IntegrationType string
	Active          int // active connections read from channels
	Due             int // of them, due for a refresh
	// OwnClock are tokens inside refresh_before that their own lifetime
	// says are not due yet (token.Due with the recorded lifetime): they
	// are not counted in Due, and not enqueued.
	OwnClock      int
	Enqueued      int // new tasks
	AlreadyQueued int // a task was already queued, running or retrying: not an error
	Retried       int // archived failures re-enqueued (cooldown over or credentials changed)
	Failing       int // permanently failed and still cooling down
	Errors        int // enqueues that failed
	BadRows       int // channel rows with an unusable connectionId
	// Duration is the scan of this type, plus the reads the pass shares
	// among all types (Syncer.Sync), which come first.
	Duration time.Duration
}

// Observer is told the result of every scan (metrics).
type Observer interface {
	Scanned(r Result, err error)
}

// Scanner scans and enqueues.
type Scanner struct {
	store Store
	queue Queue
	cfg   Config
	log   *zap.Logger
	obs   Observer
}

// New returns a scanner. obs may be nil.
func New(store Store, queue Queue, cfg Config, log *zap.Logger, obs Observer) *Scanner {
	cfg.defaults()
	return &Scanner{store: store, queue: queue, cfg: cfg, log: log, obs: obs}
}

// Run scans now and then every interval until ctx ends. A failed scan is
// logged and the next one tries again.
func (s *Scanner) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := s.RunOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("scan failed", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RunOnce scans every target once. One target's failure does not stop the
// others; the returned error joins them.
func (s *Scanner) RunOnce(ctx context.Context) ([]Result, error) {
	var synced time.Duration
	if sy, ok := s.store.(Syncer); ok {
		start := time.Now()
		if err := sy.Sync(ctx, s.cfg.Now()); err != nil {
			return nil, err
		}
		synced = time.Since(start)
	}
	var archived map[int64]task.Archived
	if !s.cfg.DryRun {
		if sc, ok := s.queue.(ShardChecker); ok {
			if err := sc.CheckShards(ctx); err != nil {
				return nil, err
			}
		}
		var err error
		if archived, err = s.queue.ListArchived(); err != nil {
			return nil, err
		}
	}
	var results []Result
	var errs []error
	for _, tg := range s.cfg.Targets {
		r, err := s.scanTarget(ctx, tg, archived)
		r.Duration += synced
		results = append(results, r)
		if s.obs != nil {
			s.obs.Scanned(r, err)
		}
		fields := []zap.Field{
			zap.String("integration_type", r.IntegrationType),
			zap.String("provider", tg.Kind),
			zap.Int("active", r.Active),
			zap.Int("due", r.Due),
			zap.Int("enqueued", r.Enqueued),
			zap.Int("already_queued", r.AlreadyQueued),
			zap.Int("retried", r.Retried),
			zap.Int("failing", r.Failing),
			zap.Int("errors", r.Errors),
			zap.Int("bad_rows", r.BadRows),
			zap.Duration("duration", r.Duration),
			zap.Bool("dry_run", s.cfg.DryRun),
		}
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return results, err
			}
			errs = append(errs, err)
			s.log.Error("scan of integration type failed", append(fields, zap.Error(err))...)
			continue
		}
		s.log.Info("scanned", fields...)
	}
	return results, errors.Join(errs...)
}

// readAhead is how many due connections may wait for a worker: about 30 ms
// of enqueues at the rates a small machine reaches, several times what a
// chunk's queries take, and a few tens of kB.
const readAhead = 1024

func (s *Scanner) scanTarget(ctx context.Context, tg token.Target, archived map[int64]task.Archived) (Result, error) {
	start := time.Now()
	now := s.cfg.Now()
	r := Result{IntegrationType: tg.IntegrationType}

	var mu sync.Mutex
	var firstErr error
	count := func(queued bool, retry bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			r.Errors++
			if firstErr == nil {
				firstErr = err
			}
		case queued && retry:
			r.Retried++
		case queued:
			r.Enqueued++
		default:
			r.AlreadyQueued++
		}
	}

	// The queue holds a whole chunk and more, so handing a chunk to the
	// workers returns at once and the next chunk's queries run while they
	// enqueue this one. With a short queue the workers sat idle through
	// every chunk's two queries (docs/benchmarks.md, figure 1).
	work := make(chan task.Payload, max(s.cfg.Concurrency*4, readAhead))
	var wg sync.WaitGroup
	if !s.cfg.DryRun {
		for range s.cfg.Concurrency {
			wg.Go(func() {
				for p := range work {
					queued, err := s.queue.Enqueue(ctx, p)
					count(queued, false, err)
				}
			})
		}
	}

	st, err := s.store.ScanDue(ctx, tg.IntegrationType, token.DueBefore(now, tg.RefreshBefore), func(due []token.DueConnection) error {
		due, later := s.ownClock(ctx, due, tg, now)
		mu.Lock()
		r.OwnClock += later
		mu.Unlock()
		if s.cfg.DryRun {
			for _, d := range due {
				fmt.Fprintf(s.cfg.DryRunOut, "connection_id=%d integration_type=%s provider=%s expires_at=%s\n",
					d.ID, d.IntegrationType, tg.Kind, formatExpiry(d.ExpiresAt))
			}
			return nil
		}
		fresh, retry, failing, err := s.splitArchived(ctx, due, archived, now)
		if err != nil {
			return err
		}
		mu.Lock()
		r.Failing += failing
		mu.Unlock()
		for _, p := range retry {
			queued, err := s.queue.Retry(ctx, p)
			count(queued, true, err)
		}
		byDeadline(fresh, now)
		for _, p := range fresh {
			select {
			case work <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	close(work)
	wg.Wait()

	r.Active, r.Due, r.BadRows = st.Active, st.Due-r.OwnClock, st.BadIDs
	r.Duration = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("scan integration type %s: %w", tg.IntegrationType, err)
	}
	if firstErr != nil {
		return r, fmt.Errorf("scan integration type %s: %d of %d enqueues failed, first: %w", tg.IntegrationType, r.Errors, r.Due, firstErr)
	}
	return r, nil
}

// Generations is what the scan reads of the refresher's lifetime records
// (task.Queue); a Queue that has none leaves refresh_before alone in charge.
type Generations interface {
	Generations(ctx context.Context, ids []int64) (map[int64]task.Generation, error)
}

// ownClock narrows the store's due rows (expiry within refresh_before) to
// those due on their own token's clock: a token whose recorded lifetime
// puts its refresh later (token.Due) is left to its scheduled refresh, so a
// marketplace issuing tokens shorter than refresh_before is not called on
// every scan. Without a record (Redis lost it, or it was never scheduled)
// refresh_before decides, as the backstop. It returns the rows kept and
// how many were left.
func (s *Scanner) ownClock(ctx context.Context, due []token.DueConnection, tg token.Target, now time.Time) ([]token.DueConnection, int) {
	g, ok := s.queue.(Generations)
	if !ok || len(due) == 0 {
		return due, 0
	}
	ids := make([]int64, len(due))
	for i, d := range due {
		ids[i] = d.ID
	}
	gens, err := g.Generations(ctx, ids)
	if err != nil {
		s.log.Warn("token lifetimes unreadable; refresh_before alone decides what is due", zap.Error(err))
		return due, 0
	}
	kept := due[:0:0]
	for _, d := range due {
		if token.Due(d.ExpiresAt, now, tg.RefreshBefore, gens[d.ID].Of(d.ExpiresAt)) {
			kept = append(kept, d)
		}
	}
	return kept, len(due) - len(kept)
}

// splitArchived sorts a chunk of due connections into those to enqueue,
// archived failures to enqueue again, and failures still cooling down. A
// permanent failure is tried again after the cooldown, or at once when its
// credentials changed; an archived task without a failure record (given up
// for another reason, or archived by an operator) waits for the cooldown.
func (s *Scanner) splitArchived(ctx context.Context, due []token.DueConnection, archived map[int64]task.Archived, now time.Time) (fresh, retry []task.Payload, failing int, err error) {
	check := map[int64]string{}
	for _, d := range due {
		a, ok := archived[d.ID]
		if !ok {
			fresh = append(fresh, payload(d))
			continue
		}
		if now.Sub(task.FailedAt(a.Failure, a.LastFailedAt)) >= s.cfg.Cooldown {
			retry = append(retry, payload(d))
			continue
		}
		if a.Failure != nil && a.Failure.Credentials != "" {
			check[d.ID] = a.Failure.Credentials
			continue
		}
		failing++
	}
	if len(check) == 0 {
		return fresh, retry, failing, nil
	}
	changed, err := s.store.CredentialsChanged(ctx, check)
	if err != nil {
		return nil, nil, 0, err
	}
	byID := make(map[int64]token.DueConnection, len(due))
	for _, d := range due {
		byID[d.ID] = d
	}
	for _, d := range due {
		id := d.ID
		if _, ok := check[id]; !ok {
			continue
		}
		if changed[id] {
			s.log.Info("credentials changed since the permanent failure; trying again",
				zap.Int64("connection_id", id))
			retry = append(retry, payload(byID[id]))
			continue
		}
		failing++
	}
	return fresh, retry, failing, nil
}

func payload(d token.DueConnection) task.Payload {
	return task.Payload{ConnectionID: d.ID, IntegrationType: d.IntegrationType, DueExpiry: d.ExpiresAt}
}

func formatExpiry(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// byDeadline sorts a chunk's tasks into the order their tokens expire in,
// the ones already lapsed (or never issued) last: asynq's queue is FIFO, so
// the enqueue order is the order idle workers take them in. It orders one
// chunk; the refresher's backlog (internal/backlog) keeps the order
// fleet-wide, across chunks, scans, retries and replicas.
func byDeadline(ps []task.Payload, now time.Time) {
	live := func(p task.Payload) bool { return p.DueExpiry != nil && p.DueExpiry.After(now) }
	slices.SortStableFunc(ps, func(a, b task.Payload) int {
		la, lb := live(a), live(b)
		switch {
		case la && lb:
			return a.DueExpiry.Compare(*b.DueExpiry)
		case la:
			return -1
		case lb:
			return 1
		}
		return 0
	})
}
