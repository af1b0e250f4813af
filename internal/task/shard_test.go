package task_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestShardIsTheConnectionsQueue: one shard is the queue of before; with N
// the connection id modulo N picks base, base.1, … base.N-1.
func TestShardIsTheConnectionsQueue(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "q", task.Shard("q", 1, 7))
	assert.Equal(t, "q", task.Shard("q", 0, 7))
	assert.Equal(t, "q", task.Shard("q", 4, 8))
	assert.Equal(t, "q.1", task.Shard("q", 4, 9))
	assert.Equal(t, "q.3", task.Shard("q", 4, 11))
	assert.Equal(t, []string{"q", "q.1", "q.2"}, task.ShardNames("q", 3))
	assert.Equal(t, []string{"q"}, task.ShardNames("q", 1))
	assert.Equal(t, map[string]int{"q_urgent": 3, "q": 9, "q.1": 9, "q.2": 9}, task.ServerQueues("q", 3),
		"the urgent queue keeps one take in ten whatever the number of shards")
	assert.Equal(t, map[string]int{"q_urgent": 1, "q": 9}, task.ServerQueues("q", 1))
}

// TestShardedQueue: on real Redis, a sharded queue puts each connection's
// scan task and wake-up in its shard, refuses a second task for it there,
// and finds, lists and retries its archived task wherever it is.
func TestShardedQueue(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	const shards = 4
	q := task.NewShardedQueue(env.Redis, env.Queue, shards, time.Minute)
	insp := asynq.NewInspectorFromRedisClient(env.Redis)
	assert.Equal(t, append(task.ShardNames(env.Queue, shards), task.UrgentQueue(env.Queue)), q.Names())

	for id := int64(1); id <= 20; id++ {
		ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: id, IntegrationType: "16"})
		require.NoError(t, err)
		require.True(t, ok)
	}
	for k, name := range task.ShardNames(env.Queue, shards) {
		info, err := insp.GetQueueInfo(name)
		require.NoError(t, err, name)
		assert.Equal(t, 5, info.Pending, "shard %d holds the ids ≡ %d mod %d", k, k, shards)
	}
	ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: 6, IntegrationType: "16"})
	require.NoError(t, err)
	assert.False(t, ok, "one task per connection: its shard holds it already")

	// Connection 7's task is archived in shard 3.
	_, err = insp.GetTaskInfo(env.Queue+".3", task.ID(7))
	require.NoError(t, err)
	require.NoError(t, insp.ArchiveTask(env.Queue+".3", task.ID(7)))
	sts, err := q.Inspect(ctx, 7)
	require.NoError(t, err)
	require.Len(t, sts, 2)
	assert.Equal(t, env.Queue+".3", sts[0].Queue)
	assert.Equal(t, "archived", sts[0].State)
	assert.Equal(t, task.UrgentQueue(env.Queue), sts[1].Queue)
	archived, err := q.ListArchived()
	require.NoError(t, err)
	require.Contains(t, archived, int64(7))
	assert.Equal(t, env.Queue+".3", archived[7].Queue)

	ok, err = q.Retry(ctx, task.Payload{ConnectionID: 7, IntegrationType: "16"})
	require.NoError(t, err)
	assert.True(t, ok)
	info, err := insp.GetTaskInfo(env.Queue+".3", task.ID(7))
	require.NoError(t, err)
	assert.Equal(t, asynq.TaskStatePending, info.State, "retried in its own shard")

	// A wake-up lands in the connection's shard too.
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	require.NoError(t, q.Schedule(ctx, task.Payload{ConnectionID: 10, IntegrationType: "16", DueExpiry: &exp},
		2*time.Hour, time.Now().Add(50*time.Minute)))
	_, err = insp.GetTaskInfo(env.Queue+".2", task.WakeID(10, exp))
	assert.NoError(t, err, "connection 10's wake-up is in shard 2")
}

// TestCheckShards: the first process records the queue's number of shards;
// one with the same number passes, one with another is refused with an
// error that names both numbers and the key to delete.
func TestCheckShards(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	ctx := context.Background()
	require.NoError(t, task.NewShardedQueue(env.Redis, env.Queue, 8, time.Minute).CheckShards(ctx))
	require.NoError(t, task.NewShardedQueue(env.Redis, env.Queue, 8, time.Minute).CheckShards(ctx))
	err := task.NewQueue(env.Redis, env.Queue, time.Minute).CheckShards(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, task.ErrShardsDiffer))
	assert.Contains(t, err.Error(), "has 8 in Redis")
	assert.Contains(t, err.Error(), "this process 1")
	assert.Contains(t, err.Error(), task.ShardsKey(env.Queue))

	require.NoError(t, env.Redis.Del(ctx, task.ShardsKey(env.Queue)).Err())
	require.NoError(t, task.NewQueue(env.Redis, env.Queue, time.Minute).CheckShards(ctx), "deleting the key is how the number changes")
}
