package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jmoiron/sqlx"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// State of one demo connection, as the progress and the dashboard show it.
const (
	StateDue        = "due"        // its token is due and no task is running it yet
	StateRefreshing = "refreshing" // a refresher is on it
	StateRetrying   = "retrying"   // a transient failure; asynq retries it with backoff
	StateFailed     = "failed"     // a permanent failure, archived with its reason
	StateFresh      = "fresh"      // its token is valid and not yet due
)

// Connection is one demo connection's status. It holds identifiers, times
// and secret-free reasons only.
type Connection struct {
	ID              int64      `json:"id"`
	Kind            string     `json:"kind"`
	IntegrationType string     `json:"integration_type"`
	Note            string     `json:"note"`
	Want            Want       `json:"want"`
	State           string     `json:"state"`
	Reason          string     `json:"reason,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at"`
	// Due: its token needs a refresh (expired, expiring within the refresh
	// window, or never generated) and it has not failed permanently. A
	// failed connection is counted as failed, not due: it waits for new
	// credentials or the cooldown. States due, refreshing and retrying can
	// be due. The live line's "due" and the summary's "still due" both
	// count this.
	Due bool `json:"due"`
	// Refreshes counts the tokens the demo stored for it.
	Refreshes int `json:"refreshes"`
}

// Status is a snapshot of the demo. In JSON, durations are whole seconds
// (elapsed_seconds, next_due_in_seconds).
type Status struct {
	Elapsed     time.Duration `json:"-"`
	Due         int           `json:"due"` // connections with Due set
	Queued      int           `json:"queued"`
	Refreshing  int           `json:"refreshing"`
	Retrying    int           `json:"retrying"`
	Refreshed   int           `json:"refreshed"` // tokens stored since the start
	Failed      int           `json:"failed"`
	Scans       int           `json:"scans"`       // scans of every integration type
	ScanErrors  int           `json:"scan_errors"` // failed scans of one integration type
	NextDueIn   time.Duration `json:"-"`           // 0: nothing upcoming
	Connections []Connection  `json:"connections"`
}

// MarshalJSON writes the durations as whole seconds: elapsed_seconds, and
// next_due_in_seconds (0: nothing upcoming).
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status // without this method
	return json.Marshal(struct {
		ElapsedSeconds   int64 `json:"elapsed_seconds"`
		NextDueInSeconds int64 `json:"next_due_in_seconds"`
		plain
	}{seconds(s.Elapsed), seconds(s.NextDueIn), plain(s)})
}

func seconds(d time.Duration) int64 { return int64(d.Round(time.Second) / time.Second) }

// tracker follows the running system: the handler and store wrappers report
// refreshes as they happen; poll reads the queue and the connections' expiry.
type tracker struct {
	conns []conn
	byID  map[int64]int
	start time.Time
	now   func() time.Time

	mu         sync.Mutex
	inFlight   map[int64]int
	refreshes  map[int64]int
	refreshed  int
	scans      map[string]int // by integration type
	scanErrors int
	queued     int
	archived   map[int64]string // connection → reason
	retrying   map[int64]string
	expiry     map[int64]*time.Time
	polled     bool
}

func newTracker(conns []conn, start time.Time, now func() time.Time) *tracker {
	t := &tracker{
		conns: conns, byID: map[int64]int{}, start: start, now: now,
		inFlight: map[int64]int{}, refreshes: map[int64]int{}, scans: map[string]int{},
		archived: map[int64]string{}, retrying: map[int64]string{}, expiry: map[int64]*time.Time{},
	}
	for i, c := range conns {
		t.byID[c.ID] = i
	}
	return t
}

var (
	_ refresh.Store = trackedStore{}
	_ scan.Observer = (*tracker)(nil)
)

// Scanned implements scan.Observer; it is told once per integration type
// per scan.
func (t *tracker) Scanned(r scan.Result, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scans[r.IntegrationType]++
	if err != nil {
		t.scanErrors++
	}
}

// middleware wraps the refresher's handler to know which connections are
// being refreshed right now.
func (t *tracker) middleware(h asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, tk *asynq.Task) error {
		p, err := task.Parse(tk)
		if err == nil {
			t.mu.Lock()
			t.inFlight[p.ConnectionID]++
			t.mu.Unlock()
			defer func() {
				t.mu.Lock()
				if t.inFlight[p.ConnectionID]--; t.inFlight[p.ConnectionID] <= 0 {
					delete(t.inFlight, p.ConnectionID)
				}
				t.mu.Unlock()
			}()
		}
		return h.ProcessTask(ctx, tk)
	})
}

// trackedStore is the production store, counting the tokens it stores.
type trackedStore struct {
	*mysql.Store // production's store, write probe included (the refresher's write gate needs it)
	t            *tracker
}

func (s trackedStore) Save(ctx context.Context, read token.Connection, tok token.Token) error {
	err := s.Store.Save(ctx, read, tok)
	if err == nil {
		s.t.mu.Lock()
		s.t.refreshes[read.ID]++
		s.t.refreshed++
		exp := tok.ExpiresAt
		s.t.expiry[read.ID] = &exp
		s.t.mu.Unlock()
	}
	return err
}

// inspector is what poll reads of the queue.
type inspector interface {
	Queues() ([]string, error)
	GetQueueInfo(queue string) (*asynq.QueueInfo, error)
	ListRetryTasks(queue string, opts ...asynq.ListOption) ([]*asynq.TaskInfo, error)
}

// poll reads the queue (pending, retrying and archived tasks with their
// reasons) and the demo connections' expiry. The reasons are the ones the
// dashboard shows: the handler writes them secret-free.
func (t *tracker) poll(ctx context.Context, q *task.Queue, insp inspector, ie *sqlx.DB) error {
	archived, err := q.ListArchived()
	if err != nil {
		return err
	}
	var queued int
	retrying := map[int64]string{}
	// GetQueueInfo reports a queue that does not exist yet (nothing was
	// enqueued) with an internal error, not asynq.ErrQueueNotFound: look first.
	queues, err := insp.Queues()
	if err != nil {
		return err
	}
	if slices.Contains(queues, q.Name()) {
		info, err := insp.GetQueueInfo(q.Name())
		if err != nil {
			return err
		}
		queued = info.Pending + info.Scheduled
		if info.Retry > 0 {
			infos, err := insp.ListRetryTasks(q.Name(), asynq.PageSize(1000))
			if err != nil && !errors.Is(err, asynq.ErrQueueNotFound) {
				return err
			}
			for _, ti := range infos {
				if id, ok := task.ConnectionID(ti.ID); ok {
					retrying[id] = ti.LastErr
				}
			}
		}
	}

	ids := make([]int64, len(t.conns))
	for i, c := range t.conns {
		ids[i] = c.ID
	}
	qs, args, err := sqlx.In(`SELECT id, accessTokenExpiryAt FROM ie_appinstall_connection WHERE id IN (?)`, ids)
	if err != nil {
		return err
	}
	var rows []struct {
		ID     int64      `db:"id"`
		Expiry *time.Time `db:"accessTokenExpiryAt"`
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ie.SelectContext(qctx, &rows, qs, args...); err != nil {
		return err
	}

	t.mu.Lock()
	defer t.mu.Unlock()
	t.queued = queued
	t.retrying = retrying
	t.archived = map[int64]string{}
	for id, a := range archived {
		reason := a.LastErr
		if a.Failure != nil {
			reason = a.Failure.Err().Error()
		}
		t.archived[id] = reason
	}
	for _, r := range rows {
		t.expiry[r.ID] = r.Expiry
	}
	t.polled = true
	return nil
}

// status returns the snapshot at now.
func (t *tracker) status() Status {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := Status{
		Elapsed: now.Sub(t.start), Queued: t.queued, Refreshed: t.refreshed, ScanErrors: t.scanErrors,
	}
	for _, n := range t.scans {
		s.Scans = max(s.Scans, n)
	}
	var next time.Time
	for _, c := range t.conns {
		cs := Connection{
			ID: c.ID, Kind: c.Kind, IntegrationType: c.IntegrationType, Note: c.Note, Want: c.Want,
			ExpiresAt: t.expiry[c.ID], Refreshes: t.refreshes[c.ID],
		}
		due := token.Due(cs.ExpiresAt, now, c.RefreshBefore, c.Row.Lifetime)
		if !due {
			if at := token.RefreshAt(*cs.ExpiresAt, c.RefreshBefore, c.Row.Lifetime); next.IsZero() || at.Before(next) {
				next = at
			}
		}
		switch reason, failed := t.archived[c.ID]; {
		case t.inFlight[c.ID] > 0:
			cs.State = StateRefreshing
			s.Refreshing++
		case failed:
			cs.State, cs.Reason = StateFailed, reason
			s.Failed++
		case t.retrying[c.ID] != "":
			cs.State, cs.Reason = StateRetrying, t.retrying[c.ID]
			s.Retrying++
		case due:
			cs.State = StateDue
		default:
			cs.State = StateFresh
		}
		if cs.Due = due && t.polled && cs.State != StateFailed; cs.Due {
			s.Due++
		}
		s.Connections = append(s.Connections, cs)
	}
	if !next.IsZero() {
		s.NextDueIn = max(next.Sub(now), time.Second)
	}
	return s
}

// Line is the one-line progress of s.
func (s Status) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  due %d", clock(s.Elapsed), s.Due)
	if s.Queued > 0 {
		fmt.Fprintf(&b, "  queued %d", s.Queued)
	}
	fmt.Fprintf(&b, "  refreshing %d  refreshed %d", s.Refreshing, s.Refreshed)
	if s.Retrying > 0 {
		fmt.Fprintf(&b, "  retrying %d", s.Retrying)
	}
	fmt.Fprintf(&b, "  failed %d", s.Failed)
	if s.NextDueIn > 0 {
		fmt.Fprintf(&b, "  next due in %s", clock(s.NextDueIn))
	}
	return b.String()
}

// Failures are the connections in state failed or retrying, by id.
func (s Status) Failures() []Connection {
	var out []Connection
	for _, c := range s.Connections {
		if c.State == StateFailed || c.State == StateRetrying {
			out = append(out, c)
		}
	}
	return out
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// printer writes the progress: on a terminal one line redrawn in place, else
// a plain line whenever something changed (at most every plainEvery, and at
// least every 30s). Failures and waves of due connections are printed as
// lines of their own, once.
type printer struct {
	out        io.Writer
	tty        bool
	plainEvery time.Duration

	last      string
	lastAt    time.Time
	drawn     bool
	lastDue   int
	seen      map[string]bool // failure lines already printed
	lastState map[int64]string
	flows     map[string]bool // kinds whose first refresh was printed
}

func newPrinter(out io.Writer, tty bool, plainEvery time.Duration) *printer {
	return &printer{out: out, tty: tty, plainEvery: plainEvery, seen: map[string]bool{}, lastState: map[int64]string{}, flows: map[string]bool{}}
}

// event prints a line of its own above the progress line.
func (p *printer) event(format string, args ...any) {
	if p.tty && p.drawn {
		io.WriteString(p.out, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintf(p.out, format+"\n", args...)
}

// update prints what changed in s.
func (p *printer) update(s Status, now time.Time) {
	if s.Due > p.lastDue {
		p.event("%s  %d connection(s) came due: their token expires within the refresh window", clock(s.Elapsed), s.Due-p.lastDue)
	}
	p.lastDue = s.Due
	// The first stored token of each flow gets a line: the first sign of
	// success comes with it, not with the next progress line. The rest are
	// counted by the progress line (refreshed N).
	for _, c := range s.Connections {
		if c.Refreshes > 0 && !p.flows[c.Kind] {
			p.flows[c.Kind] = true
			expiry := ""
			if c.ExpiresAt != nil {
				expiry = ", expires " + c.ExpiresAt.UTC().Format(time.TimeOnly) + " UTC"
			}
			p.event("%s  refreshed: connection %d (%s, integration type %s): token stored%s (first of its flow)",
				clock(s.Elapsed), c.ID, c.Kind, c.IntegrationType, expiry)
		}
	}
	for _, c := range s.Failures() {
		key := fmt.Sprintf("%d\x00%s\x00%s", c.ID, c.State, c.Reason)
		if !p.seen[key] {
			p.seen[key] = true
			p.event("%s  %s: connection %d (%s, integration type %s): %s", clock(s.Elapsed), c.State, c.ID, c.Kind, c.IntegrationType, c.Reason)
		}
	}
	for _, c := range s.Connections {
		prev := p.lastState[c.ID]
		if c.State == StateFresh && (prev == StateFailed || prev == StateRetrying) {
			p.event("%s  connection %d recovered: its token is refreshed", clock(s.Elapsed), c.ID)
		}
		p.lastState[c.ID] = c.State
	}

	line := s.Line()
	body := line[strings.Index(line, "  ")+2:] // without the clock
	if p.tty {
		// A line that wraps cannot be redrawn in place: keep it to one row
		// of an 80-column terminal.
		if len(line) > 79 {
			line = line[:78] + "…"
		}
		io.WriteString(p.out, "\r\033[K"+line)
		p.drawn = true
		p.last = body
		return
	}
	if (body != p.last && now.Sub(p.lastAt) >= p.plainEvery) || now.Sub(p.lastAt) >= 30*time.Second {
		fmt.Fprintln(p.out, line)
		p.last, p.lastAt = body, now
	}
}

// summary prints the final account.
func (p *printer) summary(s Status) {
	if p.tty && p.drawn {
		io.WriteString(p.out, "\r\033[K")
		p.drawn = false
	}
	fmt.Fprintf(p.out, "\nSummary after %s:\n", clock(s.Elapsed))
	var refreshedConns []int64
	for _, c := range s.Connections {
		if c.Refreshes > 0 {
			refreshedConns = append(refreshedConns, c.ID)
		}
	}
	slices.Sort(refreshedConns)
	fmt.Fprintf(p.out, "  refreshed: %d token(s) stored for %d of %d connections %v\n",
		s.Refreshed, len(refreshedConns), len(s.Connections), refreshedConns)
	fails := s.Failures()
	sort.Slice(fails, func(i, j int) bool { return fails[i].ID < fails[j].ID })
	fmt.Fprintf(p.out, "  failed:    %d\n", len(fails))
	for _, c := range fails {
		fmt.Fprintf(p.out, "    connection %d (%s, integration type %s), %s: %s\n", c.ID, c.Kind, c.IntegrationType, c.State, c.Reason)
	}
	var due []int64 // the live line's "due": a token to refresh, not failed
	for _, c := range s.Connections {
		if c.Due {
			due = append(due, c.ID)
		}
	}
	slices.Sort(due)
	fmt.Fprintf(p.out, "  still due: %d %v\n", len(due), due)
	fmt.Fprintf(p.out, "  scans:     %d (%d scans of an integration type failed)\n", s.Scans, s.ScanErrors)
}
