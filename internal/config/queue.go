package config

import (
	"context"
	"errors"

	"github.com/hibiken/asynq"

	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/task"
)

// TaskQueue is the refresh queue the settings name (REFRESH_QUEUE,
// REFRESH_QUEUE_SHARDS, REFRESH_TIMEOUT) on rdb, a client of REDIS_URL.
// Check its shards against Redis (task.Queue.CheckShards) before use.
func (c Common) TaskQueue(rdb redis.UniversalClient) *task.Queue {
	return task.NewShardedQueue(rdb, c.Queue, c.QueueShards, c.TaskTimeout)
}

// CheckQueue is the start-up check of the queue's shards against Redis
// (opt is REDIS_URL's): nil, or one line naming REFRESH_QUEUE_SHARDS when
// the queue was set up with another number, or REDIS_URL when Redis did not
// answer.
func CheckQueue(ctx context.Context, q *task.Queue, opt asynq.RedisConnOpt) error {
	err := q.CheckShards(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, task.ErrShardsDiffer):
		return &SettingError{Name: "REFRESH_QUEUE_SHARDS", Err: err}
	default:
		return RedisError(opt, err)
	}
}
