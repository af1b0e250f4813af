package config

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/task"
)

// TaskQueue is the refresh queue the settings name (REFRESH_QUEUE,
// REFRESH_QUEUE_SHARDS, REFRESH_TIMEOUT) on rdb, a client of REDIS_URL.
// Check its shards against Redis (task.Queue.CheckShards) before use.
func (c Common) TaskQueue(rdb redis.UniversalClient) *task.Queue {
	return task.NewShardedQueue(rdb, c.Queue, c.QueueShards, c.TaskTimeout)
}

// CheckQueue is the start-up check of the queue's shards: nil, or one line
// naming REFRESH_QUEUE_SHARDS.
func CheckQueue(ctx context.Context, q *task.Queue) error {
	if err := q.CheckShards(ctx); err != nil {
		return &SettingError{Name: "REFRESH_QUEUE_SHARDS", Err: err}
	}
	return nil
}
