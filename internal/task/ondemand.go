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

// Busy reports whether a refresh of the connection is queued, scheduled,
// running or waiting to retry in the scan queue or the urgent one. Task ids
// are unique per queue only, so both are asked.
func (q *Queue) Busy(ctx context.Context, connectionID int64) (bool, error) {
	for _, name := range q.names() {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		info, err := q.inspector.GetTaskInfo(name, ID(connectionID))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("read refresh task of connection %d: %w", connectionID, err)
		}
		switch info.State {
		case asynq.TaskStateArchived, asynq.TaskStateCompleted:
			continue
		}
		return true, nil
	}
	return false, nil
}

// EnqueueForced puts an on-demand refresh of p's connection on the urgent
// queue, marked Forced so it calls the marketplace even when the stored token
// is not due. An archived failure of the connection is cleared first: an
// operator asking for a refresh is the "operator retries it" of a permanent
// failure. It returns false when a refresh is already queued or running.
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
