package task_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

type bundle struct {
	env       *testenv.Env
	queue     *task.Queue
	inspector *asynq.Inspector
	urgent    string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	env := testenv.New(t)
	return &bundle{env: env, queue: task.NewQueue(env.Redis, env.Queue, time.Minute),
		inspector: asynq.NewInspectorFromRedisClient(env.Redis), urgent: task.UrgentQueue(env.Queue)}
}

func payload(id int64) task.Payload {
	return task.Payload{ConnectionID: id, IntegrationType: "16"}
}

// archive parks a connection's pending task in queue as archived, as a
// permanent failure does.
func (b *bundle) archive(t *testing.T, queue string, id int64) {
	t.Helper()
	require.NoError(t, b.inspector.ArchiveTask(queue, task.ID(id)))
}

func (b *bundle) state(t *testing.T, queue string, id int64) string {
	t.Helper()
	info, err := b.inspector.GetTaskInfo(queue, task.ID(id))
	if err != nil {
		return "none"
	}
	return info.State.String()
}

func TestEnqueueForcedGoesToTheUrgentQueueOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()

	busy, err := b.queue.Busy(ctx, 11)
	require.NoError(t, err)
	assert.False(t, busy, "nothing queued yet (the queues do not even exist)")

	queued, err := b.queue.EnqueueForced(ctx, payload(11))
	require.NoError(t, err)
	assert.True(t, queued)
	assert.Equal(t, "pending", b.state(t, b.urgent, 11))
	assert.Equal(t, "none", b.state(t, b.env.Queue, 11))
	info, err := b.inspector.GetTaskInfo(b.urgent, task.ID(11))
	require.NoError(t, err)
	p, err := task.Parse(asynq.NewTask(info.Type, info.Payload))
	require.NoError(t, err)
	assert.True(t, p.Forced, "an on-demand refresh calls the marketplace even when not due")

	busy, err = b.queue.Busy(ctx, 11)
	require.NoError(t, err)
	assert.True(t, busy)
	queued, err = b.queue.EnqueueForced(ctx, payload(11))
	require.NoError(t, err)
	assert.False(t, queued, "already queued on the urgent queue")
}

// TestEnqueueForcedBesideAScanTask: a scan's pending task does not answer
// an on-demand request (it makes no call when the connection is not due), so
// the on-demand one is queued beside it; the connection's lease lets only
// one of the two call (e2e TestOnDemandRacesScan).
func TestEnqueueForcedBesideAScanTask(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	queued, err := b.queue.Enqueue(ctx, payload(12))
	require.NoError(t, err)
	require.True(t, queued)

	queued, err = b.queue.EnqueueForced(ctx, payload(12))
	require.NoError(t, err)
	assert.True(t, queued)
	assert.Equal(t, "pending", b.state(t, b.urgent, 12))
	assert.Equal(t, "pending", b.state(t, b.env.Queue, 12))
}

func TestArchivedFailuresOfBothQueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, id := range []int64{21, 22} {
		queued, err := b.queue.Enqueue(ctx, payload(id))
		require.NoError(t, err)
		require.True(t, queued)
		b.archive(t, b.env.Queue, id)
	}
	queued, err := b.queue.EnqueueUrgent(ctx, task.Payload{ConnectionID: 23, IntegrationType: "43"})
	require.NoError(t, err)
	require.True(t, queued)
	b.archive(t, b.urgent, 23)

	archived, err := b.queue.ListArchived()
	require.NoError(t, err)
	require.Len(t, archived, 3)
	assert.Equal(t, b.env.Queue, archived[21].Queue)
	assert.Equal(t, "16", archived[21].IntegrationType)
	assert.Equal(t, b.urgent, archived[23].Queue, "a failed on-demand refresh counts as a failure too")
	assert.Equal(t, "43", archived[23].IntegrationType)

	busy, err := b.queue.Busy(ctx, 21)
	require.NoError(t, err)
	assert.False(t, busy, "an archived task is not a refresh in progress")

	// An operator's on-demand refresh replaces the archived failure.
	queued, err = b.queue.EnqueueForced(ctx, payload(21))
	require.NoError(t, err)
	assert.True(t, queued)
	assert.Equal(t, "none", b.state(t, b.env.Queue, 21), "the archived failure is cleared")
	assert.Equal(t, "pending", b.state(t, b.urgent, 21))

	// The scanner's retry of a failed on-demand refresh clears it from the
	// urgent queue and queues on the scan queue.
	queued, err = b.queue.Retry(ctx, task.Payload{ConnectionID: 23, IntegrationType: "43"})
	require.NoError(t, err)
	assert.True(t, queued)
	assert.Equal(t, "none", b.state(t, b.urgent, 23))
	assert.Equal(t, "pending", b.state(t, b.env.Queue, 23))

	archived, err = b.queue.ListArchived()
	require.NoError(t, err)
	assert.Len(t, archived, 1)
	assert.Contains(t, archived, int64(22))
}

// TestEnsureForced: concurrent reports of one token make one task; a
// waiting task for an older token is replaced, one for a newer token is
// joined; an archived failure is reported, or cleared on retry.
func TestEnsureForced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	e1 := time.Now().UTC().Add(time.Minute).Truncate(time.Second)
	e2 := e1.Add(30 * time.Minute)
	at := func(e time.Time) task.Payload { p := payload(11); p.DueExpiry = &e; return p }
	dueOf := func() time.Time {
		info, err := b.inspector.GetTaskInfo(b.urgent, task.ID(11))
		require.NoError(t, err)
		p, err := task.Parse(asynq.NewTask(info.Type, info.Payload))
		require.NoError(t, err)
		assert.True(t, p.Forced)
		return *p.DueExpiry
	}

	results := make(chan string, 20)
	for range 20 {
		go func() {
			r, err := b.queue.EnsureForced(ctx, at(e1), false)
			assert.NoError(t, err)
			results <- r
		}()
	}
	counts := map[string]int{}
	for range 20 {
		counts[<-results]++
	}
	assert.Equal(t, map[string]int{task.Queued: 1, task.Joined: 19}, counts)
	assert.True(t, e1.Equal(dueOf()))

	r, err := b.queue.EnsureForced(ctx, at(e2), false)
	require.NoError(t, err)
	assert.Equal(t, task.Queued, r, "a waiting task for an older token is replaced")
	assert.True(t, e2.Equal(dueOf()))
	r, err = b.queue.EnsureForced(ctx, at(e1), false)
	require.NoError(t, err)
	assert.Equal(t, task.Joined, r, "a report read before the newer token joins the newer task")
	assert.True(t, e2.Equal(dueOf()))

	b.archive(t, b.urgent, 11)
	r, err = b.queue.EnsureForced(ctx, at(e2), false)
	require.NoError(t, err)
	assert.Equal(t, task.Failing, r)
	assert.Equal(t, "archived", b.state(t, b.urgent, 11))
	r, err = b.queue.EnsureForced(ctx, at(e2), true)
	require.NoError(t, err)
	assert.Equal(t, task.Queued, r, "retry clears the archived failure")
	assert.Equal(t, "pending", b.state(t, b.urgent, 11))
}
