// Package dueset keeps the connections of the configured integration types
// whose token is not fresh (due, expired or never issued), reading MySQL in
// proportion to them and to what changes, not to the fleet. The scanner
// scans from it and the census counts from it; each long-running process
// holds its own.
//
// How (docs/how-it-works.md, "What a scan reads"): a full pass walks every
// configured integration type's active connections (as every scan did
// before), every FullInterval (default 10m) and at start. Between full
// passes, a pass reads only:
//   - the rows it tracks, again, by primary key (and their channels), to see
//     which were refreshed, deactivated or deleted;
//   - the rows whose expiry entered the refresh window since the last pass:
//     a range of the ie_appinstall_connection(accessTokenExpiryAt) index
//     from the last pass's bound to now + refresh_before;
//   - new rows: ie_appinstall_connection ids above the highest one seen
//     NewRowLookback ago, and channels of a configured type with a
//     connectionId above the highest one seen for it then (so a new
//     connection is found whichever of its two rows is written last, and
//     when ids are committed out of order).
//
// A row leaves the tracked set only when its expiry is at or after the new
// bound of its window, so the window's range finds it again when it comes
// due: a refreshed token is never lost between passes. What the passes
// between full ones cannot see (a row written behind the bound by another
// system, a connection reactivated, a channel added for an old id) the next
// full pass finds.
//
// Without the optional indexes (deploy/mysql/03-indexes.sql: the expiry
// index, and channels(connectionId)) every pass is a full pass, as before,
// and the tracker says so once.
package dueset

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/token"
)

// DefaultFullInterval is how often a full pass walks the fleet by default.
const DefaultFullInterval = 10 * time.Minute

// NewRowLookback is how far back a pass looks for new rows: ids are handed
// out in one order and committed in another (two onboardings at once, a
// connection whose channel is written after a later connection's), so a
// pass reads the rows above the highest ids seen NewRowLookback ago, not
// just since the last pass. A row committed later than that behind a
// higher id waits for the full pass.
const NewRowLookback = 2 * time.Minute

// cursors are the highest ids one pass had seen.
type cursors struct {
	at      time.Time
	ie      int64            // ie_appinstall_connection.id
	channel map[string]int64 // channels.connectionId, per type
}

// Options of a tracker. Zero values take the defaults.
type Options struct {
	// FullInterval is the time between full passes (default
	// DefaultFullInterval).
	FullInterval time.Duration
	// Log receives the one line that says which way the passes read.
	Log *zap.Logger
}

// Stats is what the last pass read.
type Stats struct {
	Full bool // the pass walked the fleet
	// Indexed: the optional indexes are there, so passes between full ones
	// read what is due.
	Indexed bool
	Tracked int // connections tracked after the pass
	// Entered, New and Rechecked count the rows a pass between full ones
	// read: entering the window, new ids, tracked ones read again.
	Entered, New, Rechecked int
}

type entry struct {
	typ string
	exp *time.Time
}

// Tracker is the tracked set of one process. Its methods are safe for
// concurrent use; a pass holds the lock.
type Tracker struct {
	store   *mysql.Store
	targets map[string]token.Target // by integration type
	types   []string                // sorted
	opts    Options

	mu      sync.Mutex
	synced  bool
	indexed bool
	// expiryIndex names the index on accessTokenExpiryAt.
	expiryIndex string
	said        *bool // the indexed state last logged
	lastFull    time.Time
	// marks are the new-row cursors of the passes within NewRowLookback
	// (and the last one before it), oldest first: a pass reads new rows
	// from the cursors of NewRowLookback ago, so a row committed after one
	// with a higher id is still found.
	marks   []cursors
	counted map[int64]time.Time         // new ids counted as active, when
	bound   map[time.Duration]time.Time // per refresh_before: the window's upper bound at the last pass
	tracked map[int64]entry
	active  map[string]int
	bad     map[string]int
	stats   Stats
}

// New returns a tracker of targets over store.
func New(store *mysql.Store, targets []token.Target, opts Options) *Tracker {
	if opts.FullInterval <= 0 {
		opts.FullInterval = DefaultFullInterval
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	t := &Tracker{store: store, targets: map[string]token.Target{}, opts: opts}
	for _, tg := range targets {
		if _, dup := t.targets[tg.IntegrationType]; !dup {
			t.targets[tg.IntegrationType] = tg
			t.types = append(t.types, tg.IntegrationType)
		}
	}
	slices.Sort(t.types)
	return t
}

// Stats returns what the last pass read.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Sync is one pass at now: a full pass when none was made yet, when
// FullInterval has passed since the last one, or when the optional indexes
// are missing (every pass is then a walk, made by ScanDue and CountStates
// themselves); otherwise a pass that reads what is due and what changed.
// On an error the tracked set is left as it was, and the next Sync makes a
// full pass.
func (t *Tracker) Sync(ctx context.Context, now time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.synced && t.indexed && now.Sub(t.lastFull) < t.opts.FullInterval {
		if err := t.incremental(ctx, now); err != nil {
			t.synced = false
			return err
		}
		return nil
	}
	ix, err := t.store.Indexes(ctx)
	if err != nil {
		// Walk this time: the walk fails too if the database is down, and
		// says so; a server without information_schema just walks.
		if t.said == nil {
			t.opts.Log.Warn("cannot tell whether the optional indexes exist; walking the fleet", zap.Error(err))
		}
		ix = mysql.Indexes{}
	}
	t.say(ix)
	t.indexed, t.expiryIndex = ix.Both(), ix.Expiry
	if !t.indexed {
		t.synced, t.lastFull, t.tracked = true, now, nil
		t.stats = Stats{Full: true}
		return nil
	}
	if err := t.full(ctx, now); err != nil {
		t.synced = false
		return err
	}
	return nil
}

// say logs the way passes read, once per change.
func (t *Tracker) say(ix mysql.Indexes) {
	both := ix.Both()
	if t.said != nil && *t.said == both {
		return
	}
	t.said = &both
	if both {
		t.opts.Log.Info("the optional indexes are there: scans read the due connections, and walk the fleet once every full-pass interval",
			zap.Duration("full_pass_interval", t.opts.FullInterval))
		return
	}
	var missing []string
	if ix.Expiry == "" {
		missing = append(missing, "ie_appinstall_connection(accessTokenExpiryAt)")
	}
	if !ix.Connection {
		missing = append(missing, "channels(connectionId)")
	}
	t.opts.Log.Warn("an optional index is missing, so every scan walks the whole fleet (every active connection read on every pass); deploy/mysql/03-indexes.sql creates them",
		zap.Strings("missing", missing))
}

// full walks every target's active connections and tracks the due ones.
func (t *Tracker) full(ctx context.Context, now time.Time) error {
	// Taken before the walk: a row written during it is read again by the
	// next pass rather than missed.
	ieAfter, err := t.store.MaxConnectionID(ctx)
	if err != nil {
		return err
	}
	tracked := map[int64]entry{}
	active, bad, chAfter := map[string]int{}, map[string]int{}, map[string]int64{}
	for _, typ := range t.types {
		tg := t.targets[typ]
		st, err := t.store.ScanDue(ctx, typ, token.DueBefore(now, tg.RefreshBefore), func(due []token.DueConnection) error {
			for _, d := range due {
				if have, ok := tracked[d.ID]; !ok || typ < have.typ {
					tracked[d.ID] = entry{typ: typ, exp: d.ExpiresAt}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		active[typ], bad[typ], chAfter[typ] = st.Active, st.BadIDs, st.LastID
	}
	t.tracked, t.active, t.bad = tracked, active, bad
	t.marks, t.counted = []cursors{{at: now, ie: ieAfter, channel: chAfter}}, map[int64]time.Time{}
	t.bound = t.bounds(now)
	t.synced, t.lastFull = true, now
	t.stats = Stats{Full: true, Indexed: true, Tracked: len(tracked)}
	t.opts.Log.Debug("full pass", zap.Int("tracked", len(tracked)))
	return nil
}

// bounds are the windows' upper bounds at now, one per refresh_before.
func (t *Tracker) bounds(now time.Time) map[time.Duration]time.Time {
	b := map[time.Duration]time.Time{}
	for _, tg := range t.targets {
		b[tg.RefreshBefore] = token.DueBefore(now, tg.RefreshBefore)
	}
	return b
}

// incremental reads what is due and what changed since the last pass.
func (t *Tracker) incremental(ctx context.Context, now time.Time) error {
	st := Stats{Indexed: true}
	candidates := map[int64]bool{}
	fresh := map[int64]bool{}         // ids new since the last pass
	known := map[int64]mysql.Expiry{} // rows this pass has read already

	base, last := t.marks[0], t.marks[len(t.marks)-1]
	for _, m := range t.marks {
		if !m.at.After(now.Add(-NewRowLookback)) {
			base = m
		}
	}
	ieAfter, from := last.ie, base.ie
	for {
		page, more, err := t.store.ConnectionsAfter(ctx, from)
		if err != nil {
			return err
		}
		st.New += len(page)
		for _, e := range page {
			if e.Active {
				candidates[e.ID], fresh[e.ID] = true, true
			}
			known[e.ID] = e
			ieAfter, from = max(ieAfter, e.ID), e.ID
		}
		if !more {
			break
		}
	}
	chAfter := maps.Clone(last.channel)
	for _, typ := range t.types {
		from := base.channel[typ]
		for {
			ids, more, err := t.store.ActiveIDsAfter(ctx, typ, from)
			if err != nil {
				return err
			}
			st.New += len(ids)
			for _, id := range ids {
				candidates[id], fresh[id] = true, true
				chAfter[typ] = max(chAfter[typ], id)
				from = max(from, id)
			}
			if !more {
				break
			}
		}
	}
	bound := t.bounds(now)
	for rb, to := range bound {
		from, ok := t.bound[rb]
		if !ok {
			continue // a new window: its full pass comes with the next
		}
		err := t.store.ExpiringBetween(ctx, t.expiryIndex, from, to, func(page []mysql.Expiry) error {
			st.Entered += len(page)
			for _, e := range page {
				candidates[e.ID] = true
				known[e.ID] = e
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	ids := slices.Collect(maps.Keys(t.tracked))
	for id := range candidates {
		if _, ok := t.tracked[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var unread []int64
	for _, id := range ids {
		if _, ok := known[id]; !ok {
			unread = append(unread, id)
		}
	}
	st.Rechecked = len(unread)
	rows, err := t.store.Expiries(ctx, unread)
	if err != nil {
		return err
	}
	for _, e := range known {
		if candidates[e.ID] || t.has(e.ID) {
			rows = append(rows, e)
		}
	}
	types, err := t.store.ActiveTypes(ctx, ids, t.types)
	if err != nil {
		return err
	}
	tracked := make(map[int64]entry, len(rows))
	active := maps.Clone(t.active)
	seen := make(map[int64]bool, len(rows))
	for _, r := range rows {
		seen[r.ID] = true
		typ, ok := types[r.ID]
		was, had := t.tracked[r.ID]
		switch {
		case !r.Active || !ok:
			if had {
				active[was.typ]-- // deactivated, or its channel closed
			}
			continue
		case fresh[r.ID] && !had && t.counted[r.ID].IsZero():
			active[typ]++
			t.counted[r.ID] = now
		}
		if token.Due(r.ExpiresAt, now, t.targets[typ].RefreshBefore, 0) {
			tracked[r.ID] = entry{typ: typ, exp: r.ExpiresAt}
		}
	}
	for id, was := range t.tracked {
		if !seen[id] {
			active[was.typ]-- // deleted
		}
	}
	for typ, n := range active {
		active[typ] = max(n, 0)
	}
	t.tracked, t.active, t.bound = tracked, active, bound
	t.marks = append(t.marks, cursors{at: now, ie: ieAfter, channel: chAfter})
	for len(t.marks) > 1 && !t.marks[1].at.After(now.Add(-NewRowLookback)) {
		t.marks = t.marks[1:] // the second is old enough to be the base
	}
	for id, at := range t.counted {
		if at.Before(now.Add(-2 * NewRowLookback)) {
			delete(t.counted, id)
		}
	}
	st.Tracked = len(tracked)
	t.stats = st
	t.opts.Log.Debug("pass", zap.Int("tracked", st.Tracked), zap.Int("entered", st.Entered),
		zap.Int("new", st.New), zap.Int("rechecked", st.Rechecked))
	return nil
}

func (t *Tracker) has(id int64) bool { _, ok := t.tracked[id]; return ok }

// ScanDue calls fn with the tracked connections of integrationType due
// before dueBefore (expiry NULL, zero or before it: the store's rule), in
// chunks of at most 1000 in order of expiry, never-issued last. Before the
// first Sync, or without the optional indexes, it is the store's walk.
func (t *Tracker) ScanDue(ctx context.Context, integrationType string, dueBefore time.Time, fn func([]token.DueConnection) error) (token.ScanStats, error) {
	t.mu.Lock()
	if !t.synced || !t.indexed {
		t.mu.Unlock()
		return t.store.ScanDue(ctx, integrationType, dueBefore, fn)
	}
	var due []token.DueConnection
	for id, e := range t.tracked {
		if e.typ == integrationType && (e.exp == nil || e.exp.Before(dueBefore)) {
			due = append(due, token.DueConnection{ID: id, IntegrationType: e.typ, ExpiresAt: e.exp})
		}
	}
	st := token.ScanStats{Active: t.active[integrationType], Due: len(due), BadIDs: t.bad[integrationType]}
	t.mu.Unlock()
	slices.SortFunc(due, func(a, b token.DueConnection) int {
		switch {
		case a.ExpiresAt == nil && b.ExpiresAt == nil:
			return cmp.Compare(a.ID, b.ID)
		case a.ExpiresAt == nil:
			return 1
		case b.ExpiresAt == nil:
			return -1
		}
		return cmp.Or(a.ExpiresAt.Compare(*b.ExpiresAt), cmp.Compare(a.ID, b.ID))
	})
	for chunk := range slices.Chunk(due, 1000) {
		if err := fn(chunk); err != nil {
			return st, err
		}
	}
	return st, nil
}

// CountStates counts integrationType's connections by token state at now
// (token.StateCounts): Due and Expired from the tracked set as of the last
// Sync, Fresh as the rest of the active connections the last full pass
// counted, plus the new ones found since and less the tracked ones gone
// since. Before the first Sync, or without the optional indexes, it is the
// store's walk.
func (t *Tracker) CountStates(ctx context.Context, integrationType string, now, dueBefore time.Time, failing map[int64]bool) (token.StateCounts, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.synced || !t.indexed {
		return t.store.CountStates(ctx, integrationType, now, dueBefore, failing)
	}
	var c token.StateCounts
	for id, e := range t.tracked {
		if e.typ != integrationType {
			continue
		}
		switch {
		case e.exp == nil || !e.exp.After(now):
			c.Expired++
			if failing[id] {
				c.ExpiredFailing++
			}
		case e.exp.Before(dueBefore):
			c.Due++
		}
	}
	c.Fresh = max(t.active[integrationType]-c.Due-c.Expired, 0)
	return c, nil
}

// CredentialsChanged is the store's (scan.Store).
func (t *Tracker) CredentialsChanged(ctx context.Context, recorded map[int64]string) (map[int64]bool, error) {
	return t.store.CredentialsChanged(ctx, recorded)
}
