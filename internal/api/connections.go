package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Connection is the answer of GET /v1/connections/{id}: identifiers, states
// and times, never a credential, a token or the credentials' fingerprint.
type Connection struct {
	ConnectionID    int64  `json:"connection_id"`
	IntegrationType string `json:"integration_type"`
	Provider        string `json:"provider"`
	Active          bool   `json:"active"`
	// State is fresh, due, expired or failing (a permanent failure waits
	// in an archived task; it overrides the token's state).
	State token.State `json:"state"`
	// ExpiresAt is the stored token's expiry (null: none was generated);
	// ExpiresInSeconds the seconds left at At (negative: expired).
	ExpiresAt        *time.Time `json:"expires_at"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
	// NextRefreshAt is when the next refresh is expected to start (null for
	// an inactive connection); NextRefresh says why then.
	NextRefreshAt *time.Time `json:"next_refresh_at"`
	NextRefresh   string     `json:"next_refresh"`
	// Tasks is the connection's refresh task in the scan queue and in its
	// urgent twin: pending, scheduled, active, retry, archived or none.
	Tasks []TaskState `json:"tasks"`
	// Attempts counts the failed attempts of the current task (0 when no
	// task holds a failure).
	Attempts int `json:"attempts"`
	// LastAttempt is the last failed attempt on record (null: none; a
	// successful refresh leaves no task behind, only a fresh expiry).
	LastAttempt *Attempt `json:"last_attempt"`
	// FailureAgeSeconds is the age of the permanent failure's credentials
	// fingerprint; CredentialsChanged is whether inputFields or the
	// refresh token changed since (the next scan then tries again).
	FailureAgeSeconds  *int64    `json:"failure_fingerprint_age_seconds,omitempty"`
	CredentialsChanged *bool     `json:"credentials_changed_since_failure,omitempty"`
	At                 time.Time `json:"at"`
}

// TaskState is a refresh task in one queue.
type TaskState struct {
	Queue         string     `json:"queue"`
	State         string     `json:"state"`
	NextProcessAt *time.Time `json:"next_process_at,omitempty"`
}

// Attempt is a failed refresh attempt: when, permanent or transient, and the
// secret-free reason the handler gave.
type Attempt struct {
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason"`
}

func (a *API) target(integrationType string) token.Target {
	for _, p := range a.cfg.Targets {
		if p.IntegrationType == integrationType {
			return p
		}
	}
	return token.Target{IntegrationType: integrationType}
}

func (a *API) show(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	log := a.log.With(zap.Int64("connection_id", id))
	d, err := a.store.Describe(r.Context(), id, a.cfg.IntegrationTypes)
	if errors.Is(err, token.ErrNotFound) {
		writeError(w, http.StatusNotFound, "connection "+strconv.FormatInt(id, 10)+" is unknown")
		return
	}
	if err != nil {
		log.Error("connection view: cannot read the connection", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the database is not answering; try again")
		return
	}
	statuses, err := a.queue.Inspect(r.Context(), id)
	if err != nil {
		log.Error("connection view: cannot read the tasks", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	tg := a.target(d.IntegrationType)
	c := Connection{
		ConnectionID: id, IntegrationType: d.IntegrationType, Provider: tg.Kind, Active: d.Active,
		State: token.StateAt(d.ExpiresAt, now, tg.RefreshBefore), At: now,
	}
	if d.ExpiresAt != nil {
		exp := d.ExpiresAt.UTC()
		left := int64(exp.Sub(now) / time.Second)
		c.ExpiresAt, c.ExpiresInSeconds = &exp, &left
	}
	var archived *task.Status
	var busy *task.Status
	for i, st := range statuses {
		ts := TaskState{Queue: st.Queue, State: st.State}
		switch st.State {
		case task.StateNone, asynq.TaskStateArchived.String(), asynq.TaskStateCompleted.String():
		default:
			t := st.NextProcessAt.UTC()
			if !t.IsZero() {
				ts.NextProcessAt = &t
			}
			busy = &statuses[i]
		}
		if st.State == asynq.TaskStateArchived.String() {
			archived = &statuses[i]
		}
		c.Tasks = append(c.Tasks, ts)
		c.Attempts += st.Attempts()
		if at := lastAttempt(st); at != nil && (c.LastAttempt == nil || at.At.After(c.LastAttempt.At)) {
			c.LastAttempt = at
		}
	}
	if archived != nil {
		c.State = token.StateFailing
		if f := archived.Failure; f != nil && f.Credentials != "" {
			age := int64(now.Sub(f.At) / time.Second)
			c.FailureAgeSeconds = &age
			changed, err := a.store.CredentialsChanged(r.Context(), map[int64]string{id: f.Credentials})
			if err != nil {
				log.Warn("connection view: cannot read the credentials' fingerprint", zap.Error(err))
			} else if ch, known := changed[id]; known {
				c.CredentialsChanged = &ch
			}
		}
	}
	c.NextRefreshAt, c.NextRefresh = a.nextRefresh(c, d, tg, a.lifetime(r.Context(), d, tg, log), busy, archived, now)
	writeJSON(w, http.StatusOK, c)
}

// Lifetimes is what the connection view reads of the refresher's token
// lifetime records (task.Queue), as the scan and the handler read them: a
// Queue without them leaves refresh_before alone in charge.
type Lifetimes interface {
	Generations(ctx context.Context, ids []int64) (map[int64]task.Generation, error)
}

// lifetime is the recorded lifetime of the connection's stored token; 0
// when unknown (no record, another generation, Redis unreadable) or when
// no lifetime of the target can move its refresh point
// (token.Target.OwnClock).
func (a *API) lifetime(ctx context.Context, d token.Described, tg token.Target, log *zap.Logger) time.Duration {
	g, ok := a.queue.(Lifetimes)
	if !ok || !d.Active || d.ExpiresAt == nil || !tg.OwnClock() {
		return 0
	}
	gens, err := g.Generations(ctx, []int64{d.ID})
	if err != nil {
		log.Warn("connection view: token lifetime unreadable; refresh_before alone decides", zap.Error(err))
		return 0
	}
	return gens[d.ID].Of(d.ExpiresAt)
}

// nextRefresh says when the next refresh should start, as the scanner and
// the workers decide it: a token not due yet is refreshed at its refresh
// point (token.RefreshAt), with its recorded lifetime (0: unknown) as the
// scan and the scheduler apply it.
func (a *API) nextRefresh(c Connection, d token.Described, tg token.Target, lifetime time.Duration, busy, archived *task.Status, now time.Time) (*time.Time, string) {
	at := func(t time.Time) *time.Time {
		t = t.UTC().Truncate(time.Second)
		if t.Before(now) {
			t = now
		}
		return &t
	}
	switch {
	case !d.Active:
		return nil, "never: the connection is not active"
	case busy != nil && busy.State == asynq.TaskStateActive.String():
		return at(now), "running now"
	case busy != nil && busy.State == asynq.TaskStatePending.String():
		return at(now), "queued: next free worker"
	case busy != nil && busy.State == asynq.TaskStateRetry.String():
		if reason, deferred := task.DeferredReason(busy.LastErr); deferred {
			// A deferral (its turn at the rate limit, an open breaker, the
			// lease held elsewhere) is not a failure.
			return at(busy.NextProcessAt), "put back, not a failure: " + reason
		}
		return at(busy.NextProcessAt), "retry of a failed attempt"
	case busy != nil:
		return at(busy.NextProcessAt), "scheduled refresh (" + busy.State + ")"
	case archived != nil && c.CredentialsChanged != nil && *c.CredentialsChanged:
		return at(now), "next scan: the credentials changed since the failure"
	case archived != nil:
		return at(task.FailedAt(archived.Failure, archived.LastFailedAt).Add(a.cfg.Cooldown)), "next scan after FAILURE_COOLDOWN, or once inputFields change, or POST …/retry"
	case d.ExpiresAt != nil && !token.Due(d.ExpiresAt, now, tg.RefreshBefore, lifetime):
		next := token.RefreshAt(*d.ExpiresAt, tg.RefreshBefore, lifetime)
		if lead := token.Lead(tg.RefreshBefore, lifetime); lead < tg.RefreshBefore {
			return at(next), fmt.Sprintf("its scheduled refresh on the token's own clock: 1/%d of its %s lifetime before expiry",
				token.LeadDivisor, lifetime)
		}
		return at(next), "first scan after its refresh window opens"
	default:
		return at(now), "next scan: the token is " + string(c.State)
	}
}

// lastAttempt is the last failure a task holds: its permanent-failure record,
// or asynq's last error read back as a failure (its class is the outcome), a
// deferral or another error.
func lastAttempt(st task.Status) *Attempt {
	if r := st.Failure; r != nil {
		f := r.Err()
		return &Attempt{At: r.At.UTC().Truncate(time.Second), Outcome: f.Class.String(), Reason: f.Reason}
	}
	if st.LastFailedAt.IsZero() || st.LastErr == "" {
		return nil
	}
	f, msg := task.LastFailure(st.LastErr)
	outcome, reason := "error", msg
	if f != nil {
		outcome, reason = f.Class.String(), f.Reason
	} else if r, deferred := task.DeferredReason(msg); deferred {
		outcome, reason = "deferred", r
	}
	return &Attempt{At: st.LastFailedAt.UTC().Truncate(time.Second), Outcome: outcome, Reason: reason}
}

func (a *API) retry(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	statuses, err := a.queue.Inspect(r.Context(), id)
	if err != nil {
		a.log.Error("retry: cannot read the tasks", zap.Int64("connection_id", id), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	failing := slices.ContainsFunc(statuses, func(s task.Status) bool { return s.State == asynq.TaskStateArchived.String() })
	if !failing {
		writeError(w, http.StatusConflict, "connection "+strconv.FormatInt(id, 10)+
			" is not failing (no archived refresh); POST …/refresh refreshes it anyway")
		return
	}
	a.enqueue(w, r, id)
}

// Listed is one connection of GET /v1/connections.
type Listed struct {
	ConnectionID    int64       `json:"connection_id"`
	IntegrationType string      `json:"integration_type"`
	Provider        string      `json:"provider"`
	State           token.State `json:"state"`
	// ExpiresAt is set for due and expired connections (null: no token).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// FailedAt and Reason are set for failing ones.
	FailedAt *time.Time `json:"failed_at,omitempty"`
	Reason   string     `json:"reason,omitempty"`
}

// List is the answer of GET /v1/connections.
type List struct {
	State       token.State `json:"state"`
	Connections []Listed    `json:"connections"`
	// Next is the cursor of the next page (?after=), empty after the last.
	Next string    `json:"next,omitempty"`
	At   time.Time `json:"at"`
}

// maxPagesPerCall bounds the store pages one list call reads while looking
// for due connections; a call that stops there answers with a cursor.
const maxPagesPerCall = 50

func (a *API) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := token.State(q.Get("state"))
	if state != token.StateFailing && state != token.StateExpired && state != token.StateDue {
		writeError(w, http.StatusBadRequest, "state must be failing, expired or due")
		return
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be a whole number from 1 to 1000")
			return
		}
		limit = n
	}
	var targets []token.Target
	for _, p := range a.cfg.Targets {
		if pv := q.Get("provider"); pv == "" || pv == p.Kind || pv == p.IntegrationType {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		writeError(w, http.StatusBadRequest, "provider must be a configured provider kind or integration type")
		return
	}
	start, after, ok := cursor(q.Get("after"), targets)
	if !ok {
		writeError(w, http.StatusBadRequest, "after must be the next cursor of a previous answer")
		return
	}
	archived, err := a.queue.ListArchived()
	if err != nil {
		a.log.Error("list: cannot read the archived refreshes", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	out := List{State: state, Connections: []Listed{}, At: now}
	if state == token.StateFailing {
		out.Connections, out.Next = listFailing(archived, targets, start, after, limit)
		writeJSON(w, http.StatusOK, out)
		return
	}
	pages := 0
	for i := start; i < len(targets) && out.Next == ""; i++ {
		tg := targets[i]
		for {
			due, next, err := a.store.DuePage(r.Context(), tg.IntegrationType, now.Add(tg.RefreshBefore), after)
			if err != nil {
				a.log.Error("list: cannot read connections", zap.String("integration_type", tg.IntegrationType), zap.Error(err))
				writeError(w, http.StatusServiceUnavailable, "the database is not answering; try again")
				return
			}
			pages++
			for _, d := range due {
				if _, failing := archived[d.ID]; failing || token.StateAt(d.ExpiresAt, now, tg.RefreshBefore) != state {
					continue
				}
				l := Listed{ConnectionID: d.ID, IntegrationType: tg.IntegrationType, Provider: tg.Kind, State: state}
				if d.ExpiresAt != nil && !d.ExpiresAt.IsZero() {
					t := d.ExpiresAt.UTC()
					l.ExpiresAt = &t
				}
				out.Connections = append(out.Connections, l)
				if len(out.Connections) == limit {
					out.Next = tg.IntegrationType + ":" + strconv.FormatInt(d.ID, 10)
					break
				}
			}
			if out.Next != "" {
				break
			}
			if next == nil {
				after = minID
				break
			}
			after = *next
			if pages >= maxPagesPerCall {
				out.Next = tg.IntegrationType + ":" + strconv.FormatInt(after, 10)
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

const minID = -1 << 63

// cursor parses "<integration type>:<id>" into the index of the type among
// targets and the id to continue after; empty is the start.
func cursor(s string, targets []token.Target) (int, int64, bool) {
	if s == "" {
		return 0, minID, true
	}
	typ, idText, ok := strings.Cut(s, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	i := slices.IndexFunc(targets, func(t token.Target) bool { return t.IntegrationType == typ })
	if !ok || err != nil || i < 0 {
		return 0, 0, false
	}
	return i, id, true
}

func listFailing(archived map[int64]task.Archived, targets []token.Target, start int, after int64, limit int) ([]Listed, string) {
	out := []Listed{}
	for i := start; i < len(targets); i++ {
		tg := targets[i]
		var ids []int64
		for id, a := range archived {
			if a.IntegrationType == tg.IntegrationType && (i > start || id > after) {
				ids = append(ids, id)
			}
		}
		slices.SortFunc(ids, cmp.Compare)
		for _, id := range ids {
			a := archived[id]
			l := Listed{ConnectionID: id, IntegrationType: tg.IntegrationType, Provider: tg.Kind, State: token.StateFailing}
			// A failing connection's reason is shown without its class
			// when it is permanent, the class failing means.
			f, reason := task.LastFailure(a.LastErr)
			failedAt := a.LastFailedAt.UTC()
			if a.Failure != nil {
				f = a.Failure.Err()
				failedAt = a.Failure.At.UTC().Truncate(time.Second)
			}
			if f != nil && f.Class == token.ClassPermanent {
				reason = f.Reason
			}
			l.FailedAt, l.Reason = &failedAt, reason
			out = append(out, l)
			if len(out) == limit {
				return out, tg.IntegrationType + ":" + strconv.FormatInt(id, 10)
			}
		}
	}
	return out, ""
}
