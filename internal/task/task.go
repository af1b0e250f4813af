// Package task owns the contract of a refresh task: its type name, its
// payload (identifiers only, never a secret), how it is built and parsed,
// the options it is enqueued with, and the record a permanent failure leaves
// on it for the next scan to read.
package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/token"
)

// TypeRefresh is the asynq task type of a token refresh.
const TypeRefresh = "token:refresh"

// DefaultQueue is the queue scans enqueue into.
const DefaultQueue = "token_refresh"

// UrgentQueue is the high-priority queue of on-demand refreshes for q.
func UrgentQueue(q string) string { return q + "_urgent" }

// Payload identifies the connection to refresh. It holds identifiers only:
// payloads are stored in Redis and shown in the dashboard.
type Payload struct {
	ConnectionID    int64  `json:"connection_id"`
	IntegrationType string `json:"integration_type"`
	// DueExpiry is the stored expiry that made the connection due; nil
	// when no token had been generated.
	DueExpiry *time.Time `json:"due_expiry"`
	// Forced refreshes even a connection that is not due (on demand).
	Forced bool `json:"forced,omitempty"`
}

// ID is the task id of a connection's refresh. One id per connection is what
// makes overlapping scans and scanner replicas enqueue nothing while a task
// for the connection is queued, running or retrying.
func ID(connectionID int64) string { return "refresh:" + strconv.FormatInt(connectionID, 10) }

// ConnectionID parses a task id made by ID.
func ConnectionID(taskID string) (int64, bool) {
	s, ok := strings.CutPrefix(taskID, "refresh:")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// MaxRetry is effectively "until it works": a transient failure of the
// marketplace heals when the marketplace does, and a connection whose task
// gave up would stay down.
const MaxRetry = 1 << 30

// New builds the task of p for queue, with its id, a deadline for one
// attempt, and no retention: a finished task frees its id at once.
func New(p Payload, queue string, timeout time.Duration) (*asynq.Task, error) {
	if p.ConnectionID <= 0 || p.IntegrationType == "" {
		return nil, fmt.Errorf("task: payload needs a connection id and an integration type")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(TypeRefresh, b,
		asynq.TaskID(ID(p.ConnectionID)),
		asynq.Queue(queue),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(timeout),
	), nil
}

// Parse reads a refresh task's payload. A bad payload can never succeed, so
// its error wraps asynq.SkipRetry.
func Parse(t *asynq.Task) (Payload, error) {
	var p Payload
	if t.Type() != TypeRefresh {
		return p, fmt.Errorf("unexpected task type %q: %w", t.Type(), asynq.SkipRetry)
	}
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return p, fmt.Errorf("malformed task payload: %w", asynq.SkipRetry)
	}
	if p.ConnectionID <= 0 || p.IntegrationType == "" {
		return p, fmt.Errorf("task payload lacks a connection id or integration type: %w", asynq.SkipRetry)
	}
	return p, nil
}

// Failure is the record a permanent failure writes as the task's result.
// The scanner reads it from the archived task to decide when to try again:
// after the cooldown, or at once when the credentials changed. Its readers
// take the failure's class and reason from Err.
type Failure struct {
	// Class is the failure's class (token.ClassPermanent: the handler
	// records no other), written as its word. It is nil in a record
	// written before the class was: that record's Reason is the failure's
	// text instead ("permanent: <reason>", token.Failure.Error).
	Class  *token.Class `json:"class,omitempty"`
	Reason string       `json:"reason"`
	// Credentials is the fingerprint (token.Fingerprinter: keyed "h1:…"
	// with FINGERPRINT_KEY, else the legacy digest) of the connection's
	// inputFields and refresh token when it failed: a new password or a
	// new refresh token changes it. Its JSON key, from when it covered the inputFields alone,
	// is kept so archived tasks already in Redis still read.
	Credentials string    `json:"inputFields_fingerprint,omitempty"`
	At          time.Time `json:"at"`
}

// Record is the record of failure f, failed at at (its Credentials are the
// caller's to set).
func Record(f *token.Failure, at time.Time) Failure {
	c := f.Class
	return Failure{Class: &c, Reason: f.Reason, At: at}
}

// Err is the recorded failure: its class and reason. A record that holds no
// class (written before it did) holds the failure's text as its reason,
// read back by token.ParseFailure; a reason that is no failure's text (the
// record of an integration type without a provider) is a permanent
// failure's, the only class ever recorded.
func (f Failure) Err() *token.Failure {
	if f.Class != nil {
		return &token.Failure{Class: *f.Class, Reason: f.Reason}
	}
	if c, reason, ok := token.ParseFailure(f.Reason); ok {
		return &token.Failure{Class: c, Reason: reason}
	}
	return &token.Failure{Class: token.ClassPermanent, Reason: f.Reason}
}

// deferredPrefix starts the text of an attempt put back without a
// marketplace call (refresh.DeferredError): not a failure.
const deferredPrefix = "deferred: "

// Deferred is the text of an attempt put back without a marketplace call
// for reason (the lease held elsewhere, an open breaker, no rate slot):
// what refresh.DeferredError says, and DeferredReason reads back from
// asynq's LastErr.
func Deferred(reason string) string { return deferredPrefix + reason }

// DeferredReason reads a task's last error back as a deferral (Deferred):
// its reason, and false when the error is no deferral.
func DeferredReason(lastErr string) (string, bool) {
	return strings.CutPrefix(lastErr, deferredPrefix)
}

// LastFailure reads a task's last error (asynq's LastErr, the handler's
// error) back: msg is that error without the ": skip retry for the task"
// asynq adds when the handler gave up, and f the failure it is
// (token.ParseFailure), or nil when it is none (a deferral, an unclassified
// error).
func LastFailure(lastErr string) (f *token.Failure, msg string) {
	msg = strings.TrimSuffix(lastErr, ": "+asynq.SkipRetry.Error())
	if c, reason, ok := token.ParseFailure(msg); ok {
		return &token.Failure{Class: c, Reason: reason}, msg
	}
	return nil, msg
}

// FailedAt is when an archived task last failed, the time FAILURE_COOLDOWN
// is counted from: the handler's own record (f) when it wrote one, which
// is exact; else asynq's lastFailedAt, which asynq keeps in whole seconds,
// rounded up, so a cooldown is never counted from before the failure. Zero
// when neither says (a task archived by hand).
func FailedAt(f *Failure, lastFailedAt time.Time) time.Time {
	if f != nil && !f.At.IsZero() {
		return f.At
	}
	if lastFailedAt.IsZero() {
		return lastFailedAt
	}
	return lastFailedAt.Add(time.Second)
}

// Marshal encodes f for asynq.ResultWriter.
func (f Failure) Marshal() []byte {
	b, _ := json.Marshal(f)
	return b
}

// ParseFailure decodes a task result written by Failure.Marshal.
func ParseFailure(b []byte) (Failure, error) {
	var f Failure
	if len(b) == 0 {
		return f, errors.New("no failure record")
	}
	err := json.Unmarshal(b, &f)
	return f, err
}
