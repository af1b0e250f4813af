package task

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// DefaultClusterShards is the number of scan queues on a Redis Cluster when
// REFRESH_QUEUE_SHARDS is unset: asynq keeps each queue's keys in one hash
// slot (asynq:{name}:…), so one queue lives on one master; 16 queues spread
// over the masters of a cluster of up to a handful of them (which master a
// queue lands on is its name's slot: the spread is measured, not exact).
const DefaultClusterShards = 16

// MaxShards bounds REFRESH_QUEUE_SHARDS: each refresher's processor tries
// the queues in turn, so an idle replica polls every one of them.
const MaxShards = 256

// Shard is the scan queue of connectionID among shards scan queues of the
// queue named base: base itself for shard 0 (so one shard is the queue of
// before), base.k for shard k = connectionID mod shards. A connection's
// scan tasks and wake-ups always land in its one shard, so asynq's task id
// dedup (per queue) still holds per connection.
func Shard(base string, shards int, connectionID int64) string {
	if shards <= 1 {
		return base
	}
	k := connectionID % int64(shards)
	if k < 0 {
		k = -k
	}
	return ShardName(base, int(k))
}

// ShardName is the name of scan queue k of the queue named base.
func ShardName(base string, k int) string {
	if k == 0 {
		return base
	}
	return base + "." + strconv.Itoa(k)
}

// ShardNames are the shards scan queues of the queue named base, shard 0
// first.
func ShardNames(base string, shards int) []string {
	out := make([]string, max(shards, 1))
	for k := range out {
		out[k] = ShardName(base, k)
	}
	return out
}

// ShardsKey is the Redis key recording how many scan queues the queue named
// base was set up with (CheckShards). It shares the slot of the queue's
// other fleet-wide keys ({base}).
func ShardsKey(base string) string { return "token-refresher:{" + base + "}:shards" }

// ErrShardsDiffer is returned by CheckShards when the queue was set up with
// another number of shards.
var ErrShardsDiffer = errors.New("the queue was set up with another number of shards")

// CheckShards records the queue's number of shards in Redis when none is
// recorded, and returns an error wrapping ErrShardsDiffer when another
// number is: a scanner enqueueing into shards a refresher does not serve
// would leave those tasks unprocessed, and a connection whose shard moved
// could hold a task in two queues. Changing the number is a deliberate
// step: stop every scanner and refresher of the queue, let the old queues
// drain or delete them, delete ShardsKey, start with the new number.
func (q *Queue) CheckShards(ctx context.Context) error {
	key := ShardsKey(q.name)
	want := strconv.Itoa(q.shards)
	// SETNX, then GET: SET NX GET needs Redis 7.
	set, err := q.rdb.SetNX(ctx, key, want, 0).Result()
	if err != nil {
		return fmt.Errorf("record the number of shards of queue %q: %w", q.name, err)
	}
	if set {
		return nil
	}
	prev, err := q.rdb.Get(ctx, key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return q.CheckShards(ctx) // deleted in between
	case err != nil:
		return fmt.Errorf("read the number of shards of queue %q: %w", q.name, err)
	case prev != want:
		return fmt.Errorf("%w: queue %q has %s in Redis (key %s), this process %d", ErrShardsDiffer, q.name, prev, key, q.shards)
	}
	return nil
}
