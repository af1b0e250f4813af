package task

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Queue enqueues refresh tasks and reads back what failed permanently.
type Queue struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	name      string
	timeout   time.Duration
}

// NewQueue returns a queue on rdb. timeout bounds one attempt of a task.
// The caller owns rdb and closes it.
func NewQueue(rdb redis.UniversalClient, name string, timeout time.Duration) *Queue {
	return &Queue{
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		name:      name,
		timeout:   timeout,
	}
}

// Name is the queue's name.
func (q *Queue) Name() string { return q.name }

// Enqueue adds the refresh of p. It returns false, and no error, when a task
// for the connection already exists (queued, running, retrying or archived).
func (q *Queue) Enqueue(ctx context.Context, p Payload) (bool, error) {
	return q.enqueue(ctx, p, q.name)
}

// EnqueueUrgent adds p to the high-priority queue of on-demand refreshes.
func (q *Queue) EnqueueUrgent(ctx context.Context, p Payload) (bool, error) {
	return q.enqueue(ctx, p, UrgentQueue(q.name))
}

func (q *Queue) enqueue(ctx context.Context, p Payload, queue string) (bool, error) {
	t, err := New(p, queue, q.timeout)
	if err != nil {
		return false, err
	}
	_, err = q.client.EnqueueContext(ctx, t)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return false, nil
	default:
		return false, fmt.Errorf("enqueue refresh of connection %d: %w", p.ConnectionID, err)
	}
}

// Archived is a connection's archived (given-up) refresh task.
type Archived struct {
	TaskID       string
	LastFailedAt time.Time
	LastErr      string
	// Failure is set when the handler recorded a permanent failure.
	Failure *Failure
}

// ListArchived returns the archived refresh tasks of the queue by
// connection id, reading them in pages.
func (q *Queue) ListArchived() (map[int64]Archived, error) {
	out := make(map[int64]Archived)
	const pageSize = 1000
	for page := 1; ; page++ {
		infos, err := q.inspector.ListArchivedTasks(q.name, asynq.PageSize(pageSize), asynq.Page(page))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return out, nil
			}
			return nil, fmt.Errorf("list archived refreshes: %w", err)
		}
		for _, info := range infos {
			id, ok := ConnectionID(info.ID)
			if !ok {
				continue
			}
			a := Archived{TaskID: info.ID, LastFailedAt: info.LastFailedAt, LastErr: info.LastErr}
			if f, err := ParseFailure(info.Result); err == nil {
				a.Failure = &f
			}
			out[id] = a
		}
		if len(infos) < pageSize {
			return out, nil
		}
	}
}

// Retry replaces a connection's archived task with a fresh one. It returns
// false when another task took the id first.
func (q *Queue) Retry(ctx context.Context, p Payload) (bool, error) {
	err := q.inspector.DeleteTask(q.name, ID(p.ConnectionID))
	if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
		return false, fmt.Errorf("clear archived refresh of connection %d: %w", p.ConnectionID, err)
	}
	return q.Enqueue(ctx, p)
}
