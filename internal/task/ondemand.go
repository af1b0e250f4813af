package task

import (
	"context"
	"errors"
	"fmt"

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
