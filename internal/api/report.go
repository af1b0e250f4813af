package api

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// A consumer whose marketplace refused an access token reports it by its
// SHA-256 (POST /v1/connections/{id}/refresh with a Report body, optional
// ?wait=). The report is compared with the token the row holds: a token
// already replaced costs nothing, and every report of the stored one joins
// one forced refresh, fleet-wide (task.Queue.EnsureForced), which the
// connection's lease keeps to one marketplace call. With a wait, the answer
// comes when the row holds another token, when the refresh failed
// permanently, or when the wait ends. No answer holds a token: the consumer
// reads the new one from MySQL, as it reads every token.

// Report is the optional body of POST /v1/connections/{id}/refresh.
type Report struct {
	// RejectedTokenSHA256 is the lowercase hex SHA-256 of the access token
	// the marketplace refused.
	RejectedTokenSHA256 string `json:"rejected_token_sha256"`
}

// Reported is the answer to a report (200 and 202).
type Reported struct {
	ConnectionID    int64  `json:"connection_id"`
	IntegrationType string `json:"integration_type"`
	// Status is "replaced" (200: the row holds a token other than the
	// rejected one; read it), "queued" or "joined" (202 without a wait:
	// this report started the refresh, or joined the one under way), or
	// "pending" (202: the wait ended with the refresh still under way or
	// retrying).
	Status string `json:"status"`
	// TaskID is the forced refresh's task (202).
	TaskID string `json:"task_id,omitempty"`
	// TaskState is asynq's state of that task when the wait ended
	// (pending, scheduled, active, retry; none between two tasks).
	TaskState string `json:"task_state,omitempty"`
	// LastAttempt is the refresh's last failed attempt, if any (202 after
	// a wait: the transient reason it is retrying for).
	LastAttempt *Attempt `json:"last_attempt,omitempty"`
	// ExpiresAt is the stored token's expiry (null: none stored) and
	// ExpiresInSeconds the seconds left at At.
	ExpiresAt        *time.Time `json:"expires_at"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
	At               time.Time  `json:"at"`
}

// Refused is the 422 answer: the refresh failed permanently.
type Refused struct {
	Error        string `json:"error"`
	ConnectionID int64  `json:"connection_id"`
	Reason       string `json:"reason"`
	// FailedAt is when it failed (absent when not on record).
	FailedAt *time.Time `json:"failed_at,omitempty"`
}

// MaxWait is the longest ?wait= a report may ask for.
const MaxWait = 60 * time.Second

// pollEvery is how often a waiting report reads the row (one primary-key
// read) and the connection's tasks (two Redis reads).
const pollEvery = 250 * time.Millisecond

// waitOf parses ?wait=: a Go duration over zero and at most MaxWait. ok is
// false when the value is bad; zero when there is none.
func waitOf(r *http.Request) (time.Duration, bool) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > MaxWait {
		return 0, false
	}
	return d, true
}

// readReport reads the optional body. present is false for an empty body;
// msg names what is wrong with a bad one.
func readReport(r *http.Request) (rep Report, present bool, msg string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 4<<10))
	if err != nil {
		return rep, false, "the body could not be read"
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return rep, false, ""
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return rep, true, `the body must be a JSON object {"rejected_token_sha256": "<64 hex digits>"}`
	}
	rep.RejectedTokenSHA256 = strings.ToLower(strings.TrimSpace(rep.RejectedTokenSHA256))
	if b, err := hex.DecodeString(rep.RejectedTokenSHA256); err != nil || len(b) != 32 {
		return rep, true, "rejected_token_sha256 must be the SHA-256 of the refused access token, as 64 hex digits"
	}
	return rep, true, ""
}

func (a *API) refresh(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	wait, ok := waitOf(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "wait must be a duration over 0s and at most "+MaxWait.String()+" (20s, 1500ms)")
		return
	}
	rep, present, msg := readReport(r)
	if msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	if !present {
		if wait > 0 {
			writeError(w, http.StatusBadRequest, `wait applies to a report of a rejected token: send {"rejected_token_sha256": …}`)
			return
		}
		a.enqueue(w, r, id)
		return
	}
	a.report(w, r, id, rep.RejectedTokenSHA256, wait)
}

func (a *API) report(w http.ResponseWriter, r *http.Request, id int64, sum string, wait time.Duration) {
	ctx := r.Context()
	log := a.log.With(zap.Int64("connection_id", id))
	c, err := a.store.FindActive(ctx, id, a.cfg.IntegrationTypes)
	if errors.Is(err, token.ErrNotFound) {
		writeError(w, http.StatusNotFound, "connection "+strconv.FormatInt(id, 10)+" is unknown or not active")
		return
	}
	if err != nil {
		log.Error("report: cannot read the connection", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the database is not answering; try again")
		return
	}
	out := Reported{ConnectionID: id, IntegrationType: c.IntegrationType}
	holds, exp, ok := a.holds(w, r, id, sum, log)
	if !ok {
		return
	}
	if !holds {
		writeJSON(w, http.StatusOK, out.at(exp, "replaced"))
		return
	}

	// The row holds the rejected token. A permanent failure on record,
	// with the credentials unchanged and its cooldown not over, would
	// only be refused again: it answers at once, and no call is made.
	statuses, err := a.queue.Inspect(ctx, id)
	if err != nil {
		log.Error("report: cannot read the tasks", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	retry := false
	if f := failure(statuses); f != nil {
		if !a.worthRetrying(r, id, f) {
			writeJSON(w, http.StatusUnprocessableEntity, refused(id, f))
			return
		}
		retry = true
	}
	p := task.Payload{ConnectionID: id, IntegrationType: c.IntegrationType, DueExpiry: exp}
	how, err := a.queue.EnsureForced(ctx, p, retry)
	if err != nil {
		log.Error("report: cannot enqueue", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	log.Info("rejected token reported", zap.String("integration_type", c.IntegrationType), zap.String("refresh", how),
		zap.Duration("wait", wait))
	out.TaskID = task.ID(id)
	if how == task.Failing {
		// Archived between the look above and the enqueue: a refresh
		// of this token just failed permanently.
		if statuses, err := a.queue.Inspect(ctx, id); err == nil {
			if f := failure(statuses); f != nil {
				writeJSON(w, http.StatusUnprocessableEntity, refused(id, f))
				return
			}
		}
	}
	if wait <= 0 {
		writeJSON(w, http.StatusAccepted, out.at(exp, how))
		return
	}
	a.await(w, r, out, p, sum, wait, log)
}

// await polls until the row holds another token (200), the refresh fails
// permanently (422) or wait ends (202).
func (a *API) await(w http.ResponseWriter, r *http.Request, out Reported, p task.Payload, sum string, wait time.Duration, log *zap.Logger) {
	ctx := r.Context()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	exp := p.DueExpiry
	var last []task.Status
	for {
		select {
		case <-ctx.Done():
			// The caller left, or the API's own deadline passed.
			writeJSON(w, http.StatusAccepted, out.pending(exp, last))
			return
		case <-deadline.C:
			writeJSON(w, http.StatusAccepted, out.pending(exp, last))
			return
		case <-tick.C:
		}
		holds, now, err := a.store.HoldsToken(ctx, p.ConnectionID, sum)
		if errors.Is(err, token.ErrNotFound) {
			writeError(w, http.StatusNotFound, "connection "+strconv.FormatInt(p.ConnectionID, 10)+" is no longer active")
			return
		}
		if err != nil {
			// A blip (a full pool, too many connections) does not end
			// the wait: the next poll reads again.
			log.Warn("report: cannot read the connection while waiting", zap.Error(err))
			continue
		}
		exp = now
		if !holds {
			writeJSON(w, http.StatusOK, out.at(exp, "replaced"))
			return
		}
		statuses, err := a.queue.Inspect(ctx, p.ConnectionID)
		if err != nil {
			log.Warn("report: cannot read the tasks while waiting", zap.Error(err))
			continue
		}
		last = statuses
		if f := failure(statuses); f != nil {
			writeJSON(w, http.StatusUnprocessableEntity, refused(p.ConnectionID, f))
			return
		}
		if urgentState(statuses) == task.StateNone {
			// The refresh ended and the row still holds the rejected
			// token: the task was one for an older token (satisfied
			// without a call), or its token is kept in the outbox
			// until the database takes it. Arm another for this token;
			// it makes no call while a kept token is unstored.
			p.DueExpiry = exp
			if _, err := a.queue.EnsureForced(ctx, p, false); err != nil {
				log.Warn("report: cannot enqueue while waiting", zap.Error(err))
			}
		}
	}
}

// holds compares the report with the row; it answers 404 or 503 itself
// when it cannot (ok false).
func (a *API) holds(w http.ResponseWriter, r *http.Request, id int64, sum string, log *zap.Logger) (bool, *time.Time, bool) {
	holds, exp, err := a.store.HoldsToken(r.Context(), id, sum)
	if errors.Is(err, token.ErrNotFound) {
		writeError(w, http.StatusNotFound, "connection "+strconv.FormatInt(id, 10)+" is unknown or not active")
		return false, nil, false
	}
	if err != nil {
		log.Error("report: cannot read the connection", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the database is not answering; try again")
		return false, nil, false
	}
	return holds, exp, true
}

// worthRetrying says whether a permanent failure on record may be tried
// again for a report: its credentials changed since, or FAILURE_COOLDOWN
// is over (what the scanner would do at its next scan).
func (a *API) worthRetrying(r *http.Request, id int64, f *failed) bool {
	if !f.failedAt.IsZero() && time.Since(f.failedAt) >= a.cfg.Cooldown {
		return true
	}
	if f.credentials == "" {
		return false
	}
	changed, err := a.store.CredentialsChanged(r.Context(), map[int64]string{id: f.credentials})
	if err != nil {
		a.log.Warn("report: cannot read the credentials' fingerprint", zap.Int64("connection_id", id), zap.Error(err))
		return false
	}
	return changed[id]
}

// failed is a permanent failure on record, with the fingerprint of the
// credentials it was refused with (never shown).
type failed struct {
	Attempt
	credentials string
	failedAt    time.Time // task.FailedAt: FAILURE_COOLDOWN counts from it
}

// failure is the permanent failure an archived task of the connection holds
// (in either queue), or nil.
func failure(statuses []task.Status) *failed {
	for _, st := range statuses {
		if st.State != asynq.TaskStateArchived.String() {
			continue
		}
		f := &failed{Attempt: Attempt{At: st.LastFailedAt.UTC().Truncate(time.Second), Outcome: token.ClassPermanent.String(), Reason: "the refresh was given up"}}
		if at := lastAttempt(st); at != nil {
			f.Attempt = *at
		}
		if st.Failure != nil {
			f.credentials = st.Failure.Credentials
		}
		f.failedAt = task.FailedAt(st.Failure, st.LastFailedAt)
		return f
	}
	return nil
}

func urgentState(statuses []task.Status) string {
	for _, st := range statuses {
		if strings.HasSuffix(st.Queue, "_urgent") {
			return st.State
		}
	}
	return task.StateNone
}

func refused(id int64, f *failed) Refused {
	out := Refused{
		Error:        "the refresh of connection " + strconv.FormatInt(id, 10) + " failed permanently: " + f.Reason,
		ConnectionID: id, Reason: f.Reason,
	}
	if !f.At.IsZero() {
		at := f.At.UTC()
		out.FailedAt = &at
	}
	return out
}

func (o Reported) at(exp *time.Time, status string) Reported {
	o.Status = status
	o.At = time.Now().UTC().Truncate(time.Second)
	if exp != nil {
		e := exp.UTC()
		left := int64(e.Sub(o.At) / time.Second)
		o.ExpiresAt, o.ExpiresInSeconds = &e, &left
	}
	return o
}

func (o Reported) pending(exp *time.Time, statuses []task.Status) Reported {
	o = o.at(exp, "pending")
	o.TaskState = urgentState(statuses)
	for _, st := range statuses {
		if at := lastAttempt(st); at != nil && (o.LastAttempt == nil || at.At.After(o.LastAttempt.At)) {
			o.LastAttempt = at
		}
	}
	return o
}
