package startup

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/redisconn"
	"github.com/eshopbox/token-refresher/internal/task"
)

// PingRedis is the start-up check of REDIS_URL (redisconn.Ping): nil, or
// one line naming the setting and the address, such as
//
//	REDIS_URL: cannot reach Redis at 127.0.0.1:1: dial tcp 127.0.0.1:1: connect: connection refused
//
// as mysql.Open names WMS_DB_DSN. opt is REDIS_URL's, rdb its client.
func PingRedis(ctx context.Context, rdb redis.UniversalClient, opt asynq.RedisConnOpt) error {
	if err := redisconn.Ping(ctx, rdb, opt); err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	return nil
}

// TaskQueue is the refresh queue the settings name (REFRESH_QUEUE,
// REFRESH_QUEUE_SHARDS, REFRESH_TIMEOUT) on rdb, a client of REDIS_URL.
// Check its shards against Redis (CheckQueue) before use.
func TaskQueue(rdb redis.UniversalClient, c config.Common) *task.Queue {
	return task.NewShardedQueue(rdb, c.Queue, c.QueueShards, c.TaskTimeout)
}

// CheckQueue is the start-up check of the queue's shards against Redis
// (task.Queue.CheckShards; opt is REDIS_URL's): nil, or one line naming
// REFRESH_QUEUE_SHARDS when the queue was set up with another number, or
// REDIS_URL when Redis did not answer.
func CheckQueue(ctx context.Context, q *task.Queue, opt asynq.RedisConnOpt) error {
	err := q.CheckShards(ctx)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, task.ErrShardsDiffer):
		return &config.SettingError{Name: "REFRESH_QUEUE_SHARDS", Err: err}
	default:
		return fmt.Errorf("REDIS_URL: %w", redisconn.Unreachable(opt, err))
	}
}
