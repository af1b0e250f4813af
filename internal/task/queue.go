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
	rdb       redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
	name      string
	shards    int
	timeout   time.Duration
}

// NewQueue returns a queue of one scan queue on rdb. timeout bounds one
// attempt of a task. The caller owns rdb and closes it.
func NewQueue(rdb redis.UniversalClient, name string, timeout time.Duration) *Queue {
	return NewShardedQueue(rdb, name, 1, timeout)
}

// NewShardedQueue returns a queue whose scan tasks are spread over shards
// asynq queues (Shard), for a Redis Cluster: asynq keeps one queue in one
// hash slot. The on-demand (urgent) queue stays one queue. shards < 1 is 1.
func NewShardedQueue(rdb redis.UniversalClient, name string, shards int, timeout time.Duration) *Queue {
	return &Queue{
		rdb:       rdb,
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		name:      name,
		shards:    max(shards, 1),
		timeout:   timeout,
	}
}

// Name is the queue's name: the name of its shard 0 and the prefix of the
// others, and the namespace of its fleet-wide keys.
func (q *Queue) Name() string { return q.name }

// Shards is the number of scan queues.
func (q *Queue) Shards() int { return q.shards }

// Names are the asynq queues the queue is made of: its scan queues, shard 0
// first, then its urgent twin.
func (q *Queue) Names() []string { return append(ShardNames(q.name, q.shards), UrgentQueue(q.name)) }

// namesOf are the asynq queues that may hold a task of the connection: its
// shard and the urgent queue.
func (q *Queue) namesOf(connectionID int64) []string {
	return []string{Shard(q.name, q.shards, connectionID), UrgentQueue(q.name)}
}

// Enqueue adds the refresh of p to its connection's scan queue. It returns
// false, and no error, when a task for the connection already exists there
// (queued, running, retrying or archived).
func (q *Queue) Enqueue(ctx context.Context, p Payload) (bool, error) {
	return q.enqueue(ctx, p, Shard(q.name, q.shards, p.ConnectionID))
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
	TaskID string
	// Queue is the queue it was archived in: the scan queue or its urgent
	// twin (a failed on-demand refresh).
	Queue           string
	IntegrationType string
	LastFailedAt    time.Time
	LastErr         string
	// Failure is set when the handler recorded a permanent failure.
	Failure *Failure
}

// ListArchived returns the archived refresh tasks of the scan queues and of
// their urgent twin by connection id (the later failure when both hold one),
// reading them in pages.
func (q *Queue) ListArchived() (map[int64]Archived, error) {
	out := make(map[int64]Archived)
	for _, name := range q.Names() {
		if err := q.listArchived(name, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (q *Queue) listArchived(queue string, out map[int64]Archived) error {
	const pageSize = 1000
	for page := 1; ; page++ {
		infos, err := q.inspector.ListArchivedTasks(queue, asynq.PageSize(pageSize), asynq.Page(page))
		if err != nil {
			if errors.Is(err, asynq.ErrQueueNotFound) {
				return nil
			}
			return fmt.Errorf("list archived refreshes: %w", err)
		}
		for _, info := range infos {
			id, ok := ConnectionID(info.ID)
			if !ok {
				continue
			}
			a := Archived{TaskID: info.ID, Queue: queue, LastFailedAt: info.LastFailedAt, LastErr: info.LastErr}
			if p, err := Parse(asynq.NewTask(info.Type, info.Payload)); err == nil {
				a.IntegrationType = p.IntegrationType
			}
			if f, err := ParseFailure(info.Result); err == nil {
				a.Failure = &f
			}
			if prev, seen := out[id]; seen && prev.LastFailedAt.After(a.LastFailedAt) {
				continue
			}
			out[id] = a
		}
		if len(infos) < pageSize {
			return nil
		}
	}
}

// Retry replaces a connection's archived task (in either queue) with a fresh
// one on the scan queue. It returns false when another task took the id
// first.
func (q *Queue) Retry(ctx context.Context, p Payload) (bool, error) {
	if err := q.clearArchived(p.ConnectionID); err != nil {
		return false, err
	}
	return q.Enqueue(ctx, p)
}

// clearArchived deletes the connection's archived task from its scan queue
// and the urgent one. A task in any other state is left alone.
func (q *Queue) clearArchived(connectionID int64) error {
	for _, name := range q.namesOf(connectionID) {
		info, err := q.inspector.GetTaskInfo(name, ID(connectionID))
		if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read refresh task of connection %d: %w", connectionID, err)
		}
		if info.State != asynq.TaskStateArchived {
			continue
		}
		err = q.inspector.DeleteTask(name, ID(connectionID))
		if err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return fmt.Errorf("clear archived refresh of connection %d: %w", connectionID, err)
		}
	}
	return nil
}
