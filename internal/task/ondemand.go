package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Inspector is the queue's asynq inspector (metrics read queue sizes with
// it).
func (q *Queue) Inspector() *asynq.Inspector { return q.inspector }

// Busy reports whether an on-demand refresh of the connection is queued,
// scheduled, running or waiting to retry on the urgent queue: one that will
// call the marketplace, or find a token stored after it was accepted, and so
// satisfy any later on-demand request too.
//
// A scan's task does not count: it makes no call when the connection is not
// due, so it cannot promise an on-demand caller a fresh token. The two may
// coexist; the connection's lease (internal/lease) lets only one of them
// call, and the other then finds the token it stored.
func (q *Queue) Busy(ctx context.Context, connectionID int64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	info, err := q.inspector.GetTaskInfo(UrgentQueue(q.name), ID(connectionID))
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read refresh task of connection %d: %w", connectionID, err)
	}
	switch info.State {
	case asynq.TaskStateArchived, asynq.TaskStateCompleted:
		return false, nil
	}
	return true, nil
}

// EnqueueForced puts an on-demand refresh of p's connection on the urgent
// queue, marked Forced: it calls the marketplace even when the stored token
// is not due, unless a token was stored after p.DueExpiry was read (the
// expiry the caller saw: "satisfied by any refresh that completes after the
// request was accepted"). An archived failure of the connection is cleared
// first: an operator asking for a refresh is the "operator retries it" of a
// permanent failure. It returns false when an on-demand refresh is already
// queued or running (Busy).
func (q *Queue) EnqueueForced(ctx context.Context, p Payload) (bool, error) {
	busy, err := q.Busy(ctx, p.ConnectionID)
	if err != nil || busy {
		return false, err
	}
	if err := q.clearArchived(p.ConnectionID); err != nil {
		return false, err
	}
	p.Forced = true
	return q.EnqueueUrgent(ctx, p)
}

// What EnsureForced did.
const (
	// Queued: this call enqueued the forced refresh.
	Queued = "queued"
	// Joined: a forced refresh of the same token (or of a newer one) was
	// already queued or running; it answers this caller too.
	Joined = "joined"
	// Failing: the connection's forced refresh is archived (a permanent
	// failure); nothing was enqueued.
	Failing = "failing"
)

// EnsureForced makes sure a forced refresh of the token whose stored expiry
// is p.DueExpiry is queued or running on the urgent queue, and says whether
// this call enqueued it (Queued), found one (Joined) or found the
// connection's forced refresh archived (Failing; retry clears an archived
// failure in either queue first, as EnqueueForced does).
//
// It is how any number of reports of one rejected token, on any number of
// API replicas, come to one task: the task id is the connection's, so every
// report after the first finds the task and joins it. A task found waiting
// with an older DueExpiry (a refresh asked for before another path stored
// the token now reported) would be satisfied by that token without a call,
// so it is replaced by one for this token; a running one is joined, and the
// caller that waits arms a new one when it ends (the row still holding the
// reported token then). A task whose DueExpiry is newer than p's means the
// reported token was replaced already: joined.
func (q *Queue) EnsureForced(ctx context.Context, p Payload, retry bool) (string, error) {
	p.Forced = true
	if retry {
		if err := q.clearArchived(p.ConnectionID); err != nil {
			return "", err
		}
	}
	urgent := UrgentQueue(q.name)
	for range 5 {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		info, err := q.inspector.GetTaskInfo(urgent, ID(p.ConnectionID))
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
			queued, err := q.EnqueueUrgent(ctx, p)
			if err != nil || queued {
				return Queued, err
			}
			continue // another report enqueued it first: look at it
		case err != nil:
			return "", fmt.Errorf("read refresh task of connection %d: %w", p.ConnectionID, err)
		}
		switch info.State {
		case asynq.TaskStateArchived:
			return Failing, nil
		case asynq.TaskStateActive:
			return Joined, nil
		case asynq.TaskStateCompleted:
			// Refresh tasks keep no retention, but a retained one
			// (a task enqueued otherwise) is done: it must not hold
			// the id against a later report.
		default:
			old, err := Parse(asynq.NewTask(info.Type, info.Payload))
			if err != nil || !olderExpiry(old.DueExpiry, p.DueExpiry) {
				return Joined, nil
			}
		}
		err = q.inspector.DeleteTask(urgent, info.ID)
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			// It started meanwhile (an active task cannot be deleted):
			// joined, as above.
			return Joined, nil
		}
	}
	return Joined, nil
}

// olderExpiry reports whether a task's DueExpiry a is of a token older than
// the one whose expiry is b: stored expiries only grow (newest issued wins),
// and "no token" is the oldest.
func olderExpiry(a, b *time.Time) bool {
	if SameExpiry(a, b) {
		return false
	}
	if a == nil || a.IsZero() {
		return true
	}
	return b != nil && a.Before(*b)
}

// SameExpiry compares two stored expiries to the second (a DATETIME has no
// fraction); nil and the zero time both mean "no token".
func SameExpiry(a, b *time.Time) bool {
	aNone, bNone := a == nil || a.IsZero(), b == nil || b.IsZero()
	if aNone || bNone {
		return aNone == bNone
	}
	return a.Truncate(time.Second).Equal(b.Truncate(time.Second))
}
