package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// StateNone is the state of a connection's refresh task in a queue that
// holds none.
const StateNone = "none"

// Status is a connection's refresh task in one queue, as an operator may see
// it: identifiers, states and times, and the secret-free reasons the handler
// gives (never the credentials' fingerprint).
type Status struct {
	Queue string
	// State is asynq's: pending, scheduled, active, retry, archived,
	// completed; StateNone when the queue holds no task of the connection.
	State string
	// Retried counts the task's failed attempts that asynq retried
	// (deferrals waiting for a breaker or a rate slot do not count).
	Retried int
	// NextProcessAt is when a pending, scheduled or retry task runs next.
	NextProcessAt time.Time
	LastFailedAt  time.Time
	// LastErr is the handler's last error: a token.Failure's
	// "<class>: <reason>" (LastFailure reads it), secret-free.
	LastErr string
	// Failure is the record of a permanent failure (archived task).
	Failure *Failure
}

// Attempts is how many attempts of the task failed: the retried ones, plus
// the last one of an archived task (archiving does not count a retry).
func (s Status) Attempts() int {
	if s.State == asynq.TaskStateArchived.String() {
		return s.Retried + 1
	}
	return s.Retried
}

// Inspect returns the connection's refresh task in its scan queue (its
// shard) and in the urgent twin, in that order (task ids are unique per
// queue only).
func (q *Queue) Inspect(ctx context.Context, connectionID int64) ([]Status, error) {
	out := make([]Status, 0, 2)
	for _, name := range q.namesOf(connectionID) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st := Status{Queue: name, State: StateNone}
		info, err := q.inspector.GetTaskInfo(name, ID(connectionID))
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound):
		case err != nil:
			return nil, fmt.Errorf("read refresh task of connection %d: %w", connectionID, err)
		default:
			st.State = info.State.String()
			st.Retried = info.Retried
			st.NextProcessAt = info.NextProcessAt
			st.LastFailedAt = info.LastFailedAt
			st.LastErr = info.LastErr
			if f, err := ParseFailure(info.Result); err == nil {
				st.Failure = &f
			}
		}
		out = append(out, st)
	}
	return out, nil
}
