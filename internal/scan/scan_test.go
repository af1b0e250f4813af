package scan_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

func dues(typ string, ids ...int64) []token.DueConnection {
	var out []token.DueConnection
	for _, id := range ids {
		out = append(out, token.DueConnection{ID: id, IntegrationType: typ})
	}
	return out
}

func TestArchivedFailuresWaitForCooldownOrNewCredentials(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	store := &scan.FakeStore{
		Due:    map[string][]token.DueConnection{"16": dues("16", 1, 2, 3, 4, 5)},
		Prints: map[int64]string{2: "fp-2", 3: "fp-3-changed"},
	}
	q := &scan.FakeQueue{Taken: map[int64]bool{}, Archived: map[int64]task.Archived{
		// 2: failed 10 minutes ago, same credentials: still cooling down.
		2: {LastFailedAt: now.Add(-10 * time.Minute), Failure: &task.Failure{Credentials: "fp-2"}},
		// 3: failed 10 minutes ago, credentials changed since: try again.
		3: {LastFailedAt: now.Add(-10 * time.Minute), Failure: &task.Failure{Credentials: "fp-3"}},
		// 4: failed two hours ago: the cooldown is over.
		4: {LastFailedAt: now.Add(-2 * time.Hour), Failure: &task.Failure{Credentials: "fp-4"}},
		// 5: archived without a failure record (by an operator): cooldown.
		5: {LastFailedAt: now.Add(-10 * time.Minute)},
	}}
	s := scan.New(store, q, scan.Config{
		Targets:  []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}},
		Cooldown: time.Hour, Now: func() time.Time { return now },
	}, zap.NewNop(), nil)
	res, err := s.RunOnce(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []int64{1}, q.Enqueued)
	assert.ElementsMatch(t, []int64{3, 4}, q.Retried)
	assert.Equal(t, 2, res[0].Failing)
	assert.Equal(t, 2, res[0].Retried)
	assert.Equal(t, 1, res[0].Enqueued)
}

func TestOneTargetFailingDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	store := &scan.FakeStore{Due: map[string][]token.DueConnection{"43": dues("43", 7, 8, 9)}, ErrFor: "16"}
	q := &scan.FakeQueue{Taken: map[int64]bool{8: true}}
	s := scan.New(store, q, scan.Config{Targets: []token.Target{
		{IntegrationType: "16", RefreshBefore: time.Minute},
		{IntegrationType: "43", RefreshBefore: time.Minute},
	}}, zap.NewNop(), nil)
	res, err := s.RunOnce(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "scan integration type 16: table is gone")
	require.Len(t, res, 2)
	assert.Equal(t, 2, res[1].Enqueued)
	assert.Equal(t, 1, res[1].AlreadyQueued)
	assert.ElementsMatch(t, []int64{7, 9}, q.Enqueued)
}

func TestEnqueueErrorsFailTheScan(t *testing.T) {
	t.Parallel()
	store := &scan.FakeStore{Due: map[string][]token.DueConnection{"16": dues("16", 1, 2, 3)}}
	q := &scan.FakeQueue{Taken: map[int64]bool{}, Fail: errors.New("redis down")}
	s := scan.New(store, q, scan.Config{Targets: []token.Target{{IntegrationType: "16", RefreshBefore: time.Minute}}}, zap.NewNop(), nil)
	res, err := s.RunOnce(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "3 of 3 enqueues failed")
	assert.Equal(t, 3, res[0].Errors)
}

// chunkStore serves due connections in chunks and signals each chunk read.
type chunkStore struct {
	chunks [][]token.DueConnection
	read   chan int // the index of each chunk as it is read
}

func (s *chunkStore) ScanDue(_ context.Context, _ string, _ time.Time, fn func([]token.DueConnection) error) (token.ScanStats, error) {
	n := 0
	for i, c := range s.chunks {
		s.read <- i
		if err := fn(c); err != nil {
			return token.ScanStats{}, err
		}
		n += len(c)
	}
	return token.ScanStats{Active: n, Due: n}, nil
}

func (s *chunkStore) CredentialsChanged(context.Context, map[int64]string) (map[int64]bool, error) {
	return map[int64]bool{}, nil
}

// gatedQueue holds every enqueue until release is closed.
type gatedQueue struct {
	*scan.FakeQueue
	release chan struct{}
}

func (q gatedQueue) Enqueue(ctx context.Context, p task.Payload) (bool, error) {
	<-q.release
	return q.FakeQueue.Enqueue(ctx, p)
}

// TestNextChunkIsReadWhileWorkersEnqueue: handing a chunk to the workers
// does not wait for its enqueues, so the next chunk's queries overlap them
// instead of leaving the workers idle at every chunk boundary.
func TestNextChunkIsReadWhileWorkersEnqueue(t *testing.T) {
	t.Parallel()
	var ids []int64
	for i := int64(1); i <= 1500; i++ {
		ids = append(ids, i)
	}
	all := dues("16", ids...)
	store := &chunkStore{chunks: [][]token.DueConnection{all[:500], all[500:1000], all[1000:]}, read: make(chan int, 3)}
	q := gatedQueue{FakeQueue: &scan.FakeQueue{Taken: map[int64]bool{}}, release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(q.release) }) }
	t.Cleanup(release) // a failed test must not leave the scan blocked
	s := scan.New(store, q, scan.Config{
		Targets: []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: time.Minute}},
	}, zap.NewNop(), nil)

	type result struct {
		res []scan.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.RunOnce(context.Background())
		done <- result{res, err}
	}()
	for want := range 2 {
		select {
		case got := <-store.read:
			require.Equal(t, want, got)
		case <-time.After(10 * time.Second):
			t.Fatalf("chunk %d was not read while the enqueues of the chunk before it were still waiting", want)
		}
	}
	release()
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 1500, r.res[0].Enqueued)
	assert.Len(t, q.Enqueued, 1500)
}

// lifetimeQueue is a FakeQueue that also serves recorded token lifetimes.
type lifetimeQueue struct {
	*scan.FakeQueue
	gens map[int64]task.Generation
	err  error
}

func (q *lifetimeQueue) Generations(_ context.Context, ids []int64) (map[int64]task.Generation, error) {
	if q.err != nil {
		return nil, q.err
	}
	out := map[int64]task.Generation{}
	for _, id := range ids {
		if g, ok := q.gens[id]; ok {
			out[id] = g
		}
	}
	return out, nil
}

// TestTokensInsideTheWindowWaitForTheirOwnClock: a row inside
// refresh_before whose recorded lifetime puts its refresh later is left to
// its scheduled wake-up; without a record, of another generation, or with
// Redis unreadable, refresh_before decides.
func TestTokensInsideTheWindowWaitForTheirOwnClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	short := 4 * time.Minute // lead 80 s under a 10-minute window
	rows := []token.DueConnection{
		{ID: 1, IntegrationType: "42", ExpiresAt: at(3 * time.Minute)}, // just stored: waits
		{ID: 2, IntegrationType: "42", ExpiresAt: at(time.Minute)},     // 60 s left < 80 s: due
		{ID: 3, IntegrationType: "42", ExpiresAt: at(3 * time.Minute)}, // no record: refresh_before
		{ID: 4, IntegrationType: "42", ExpiresAt: at(3 * time.Minute)}, // record of another generation
		{ID: 5, IntegrationType: "42"},                                 // never generated
	}
	gens := map[int64]task.Generation{
		1: {ExpiresAt: *at(3 * time.Minute), Lifetime: short},
		2: {ExpiresAt: *at(time.Minute), Lifetime: short},
		4: {ExpiresAt: *at(2 * time.Minute), Lifetime: short},
		5: {ExpiresAt: *at(time.Minute), Lifetime: short},
	}
	run := func(err error) ([]int64, scan.Result) {
		q := &lifetimeQueue{FakeQueue: &scan.FakeQueue{Taken: map[int64]bool{}}, gens: gens, err: err}
		s := scan.New(&scan.FakeStore{Due: map[string][]token.DueConnection{"42": rows}}, q, scan.Config{
			Targets: []token.Target{{IntegrationType: "42", RefreshBefore: 10 * time.Minute}},
			Now:     func() time.Time { return now },
		}, zap.NewNop(), nil)
		res, rerr := s.RunOnce(context.Background())
		require.NoError(t, rerr)
		return q.Enqueued, res[0]
	}
	enq, res := run(nil)
	assert.ElementsMatch(t, []int64{2, 3, 4, 5}, enq)
	assert.Equal(t, 1, res.OwnClock)
	assert.Equal(t, 4, res.Due)

	enq, res = run(errors.New("redis down"))
	assert.ElementsMatch(t, []int64{1, 2, 3, 4, 5}, enq, "without the records refresh_before decides")
	assert.Zero(t, res.OwnClock)
}
