package task_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestUrgentOvertakesBacklog: with the refresher's queue set, an on-demand
// refresh is taken long before a backlog of scanned refreshes drains, on
// one scan queue or spread over shards.
func TestUrgentOvertakesBacklog(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d shards", shards), func(t *testing.T) {
			t.Parallel()
			urgentOvertakes(t, shards)
		})
	}
}

func urgentOvertakes(t *testing.T, shards int) {
	env := testenv.New(t)
	q := task.NewShardedQueue(env.Redis, env.Queue, shards, time.Minute)
	ctx := context.Background()
	const backlog = 400
	for id := int64(1); id <= backlog; id++ {
		ok, err := q.Enqueue(ctx, task.Payload{ConnectionID: id, IntegrationType: "16"})
		require.NoError(t, err)
		require.True(t, ok)
	}
	ok, err := q.EnqueueUrgent(ctx, task.Payload{ConnectionID: 9999, IntegrationType: "16", Forced: true})
	require.NoError(t, err)
	require.True(t, ok)

	var mu sync.Mutex
	var order []int64
	urgentAt := make(chan int, 1)
	srv := asynq.NewServerFromRedisClient(env.Redis, asynq.Config{
		Concurrency: 1, Queues: task.ServerQueues(env.Queue, shards),
		LogLevel: asynq.ErrorLevel, TaskCheckInterval: 20 * time.Millisecond,
	})
	mux := asynq.NewServeMux()
	mux.HandleFunc(task.TypeRefresh, func(_ context.Context, t *asynq.Task) error {
		p, err := task.Parse(t)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		order = append(order, p.ConnectionID)
		if p.ConnectionID == 9999 {
			urgentAt <- len(order)
		}
		return nil
	})
	require.NoError(t, srv.Start(mux))
	t.Cleanup(srv.Shutdown)

	select {
	case n := <-urgentAt:
		// Each take tries the urgent queue first with probability 1/10:
		// missing it 200 times running has odds of about 1 in 10^9.
		require.Less(t, n, 200, "the on-demand refresh waited for %d scanned ones", n-1)
	case <-time.After(time.Minute):
		t.Fatal("the on-demand refresh was not taken within a minute")
	}
}
