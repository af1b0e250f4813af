package fault

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	backlogpkg "github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/lease"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/ratelimit"
	"github.com/eshopbox/token-refresher/internal/redisconn"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// TestClusterEveryRedisPart: every part of the product that keeps state in
// Redis does each of its operations on a real 3-master cluster through the
// same client the binaries make: the sharded queue (enqueue, on-demand,
// schedule, lifetimes, archived lists, inspect, retry, the shard record),
// the connection lease and the census lease, the rate limiter, the
// earliest-deadline backlog (multi-key scripts), the sealed outbox and the
// webhook notifier's state script. A key layout that put one script's keys
// in two slots fails here with CROSSSLOT; and the fleet-wide keys are
// checked to share one slot, the queue's.
func TestClusterEveryRedisPart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3, 0, clusterPassword)
	rdb := c.Client(t)
	ctx := context.Background()
	const queue = "parts"
	now := time.Now().UTC().Truncate(time.Second)
	exp := now.Add(5 * time.Minute)

	// The sharded queue.
	q := task.NewShardedQueue(rdb, queue, task.DefaultClusterShards, time.Minute)
	require.NoError(t, q.CheckShards(ctx))
	for id := int64(1); id <= 32; id++ {
		ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: id, IntegrationType: "16", DueExpiry: &exp})
		require.NoError(t, err)
		require.True(t, ok)
	}
	masters := map[string]bool{}
	for _, name := range task.ShardNames(queue, task.DefaultClusterShards) {
		masters[c.MasterOf("asynq:{"+name+"}:pending").Addr] = true
	}
	assert.Len(t, masters, 3, "the 16 shards of %q reach all three masters", queue)
	ok, err := q.EnqueueForced(ctx, task.Payload{ConnectionID: 40, IntegrationType: "16", DueExpiry: &exp})
	require.NoError(t, err)
	assert.True(t, ok)
	state, err := q.EnsureForced(ctx, task.Payload{ConnectionID: 40, IntegrationType: "16", DueExpiry: &exp}, false)
	require.NoError(t, err)
	assert.Equal(t, task.Joined, state)
	require.NoError(t, q.Schedule(ctx, task.Payload{ConnectionID: 41, IntegrationType: "42", DueExpiry: &exp}, 90*time.Second, now.Add(time.Minute)))
	gens, err := q.Generations(ctx, []int64{41, 42})
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, gens[41].Lifetime)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	require.NoError(t, insp.ArchiveTask(task.Shard(queue, task.DefaultClusterShards, 7), task.ID(7)))
	archived, err := q.ListArchived()
	require.NoError(t, err)
	require.Contains(t, archived, int64(7))
	sts, err := q.Inspect(ctx, 7)
	require.NoError(t, err)
	assert.Equal(t, "archived", sts[0].State)
	ok, err = q.Retry(ctx, task.Payload{ConnectionID: 7, IntegrationType: "16"})
	require.NoError(t, err)
	assert.True(t, ok)

	// The leases.
	leases := lease.New(rdb, queue, 0)
	held, err := leases.Acquire(ctx, 7, "replica-a")
	require.NoError(t, err)
	_, err = leases.Acquire(ctx, 7, "replica-b")
	var busy *lease.BusyError
	assert.ErrorAs(t, err, &busy, "one holder per connection")
	held.Release()
	lead, err := leases.TryLead(ctx, "census", "replica-a")
	require.NoError(t, err)
	require.NotNil(t, lead)
	lead.Release()

	// The rate limiter and the backlog.
	lim := ratelimit.New(rdb, ratelimit.Key(queue, "16"), 50)
	_, err = lim.Take(ctx)
	require.NoError(t, err)
	bl := backlogpkg.New(rdb, queue, "16", backlogpkg.Config{Interval: 20 * time.Millisecond, Window: 2, Horizon: 5 * time.Minute})
	for id := int64(1); id <= 5; id++ {
		e := now.Add(time.Duration(id) * time.Minute)
		_, err := bl.Place(ctx, id, &e, now, time.Second)
		require.NoError(t, err, "place %d", id)
	}
	fc, err := bl.Forecast(ctx, now)
	require.NoError(t, err)
	assert.Positive(t, fc.Waiting)
	for id := int64(1); id <= 5; id++ {
		require.NoError(t, bl.Leave(ctx, id))
	}

	// The sealed outbox.
	box, err := outbox.NewRedis(rdb, queue, make([]byte, outbox.KeySize))
	require.NoError(t, err)
	entry := outbox.Entry{ConnectionID: 7, IntegrationType: "16", Obtained: now,
		Token: token.Token{AccessToken: "at-cluster", ExpiresAt: exp},
		Read:  token.Connection{ID: 7, IntegrationType: "16"}}
	require.NoError(t, box.Put(ctx, entry))
	got, found, err := box.Get(ctx, 7)
	require.NoError(t, err)
	require.True(t, found)
	deleted, err := box.Delete(ctx, got)
	require.NoError(t, err)
	assert.True(t, deleted)

	// The webhook notifier's state script and its delivery task.
	eps, err := webhook.ParseURLsWith("http://127.0.0.1:1/hook", true)
	require.NoError(t, err)
	n := webhook.NewNotifier(rdb, queue, eps, webhook.NotifierConfig{}, zap.NewNop())
	require.NoError(t, n.Report(ctx, "failed", true, webhook.Event{Type: webhook.EventFailed,
		Data: webhook.Data{ConnectionID: 7, IntegrationType: "16", Provider: "ajio", Reason: "rejected"}}))
	info, err := insp.GetQueueInfo(webhook.Queue(queue))
	require.NoError(t, err)
	assert.Equal(t, 1, info.Size, "one delivery queued")

	// A redis:// URL to one of its nodes is refused at start-up, naming
	// the scheme to use; the cluster's own URL passes.
	ms := c.Masters(ctx)
	node, other := ms[0], c.client(ms[1].Addr)
	direct := redis.NewClient(&redis.Options{Addr: node.Addr, Password: clusterPassword})
	defer direct.Close()
	err = redisconn.Ping(ctx, direct, asynq.RedisClientOpt{Addr: node.Addr, Password: clusterPassword})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a node of a Redis Cluster: use redis-cluster://")
	require.NoError(t, redisconn.Ping(ctx, rdb, asynq.RedisClusterClientOpt{Addrs: c.Addrs(), Password: clusterPassword}))

	// The fleet-wide keys share the queue's slot.
	slot := func(key string) int64 {
		s, err := rdb.ClusterKeySlot(ctx, key).Result()
		require.NoError(t, err)
		return s
	}
	want := slot("{" + queue + "}")
	for _, key := range []string{leases.Key(7), leases.RoleKey("census"), "rate:" + ratelimit.Key(queue, "16"),
		backlogpkg.Key(queue, "16"), box.Key(), task.LifetimesKey(queue), task.ShardsKey(queue)} {
		assert.Equal(t, want, slot(key), "%s is in the queue's slot", key)
	}

	// A master down: every other node still answers a PING, but the
	// readiness check does not pass until the master is back.
	c.Kill(node)
	assert.Error(t, redisconn.Ready(ctx, rdb), "a master down is not ready")
	assert.NoError(t, other.Ping(ctx).Err(), "which a PING to another node would not tell")
}
