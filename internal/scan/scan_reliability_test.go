package scan

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestArchivedFailuresComeBack: an archived task never freezes a connection.
// A permanent failure is tried again after the cooldown or as soon as the
// credentials change; one archived for another reason after the cooldown.
func TestArchivedFailuresComeBack(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const cooldown = time.Hour
	failed := func(ago time.Duration, fp string) task.Archived {
		return task.Archived{LastFailedAt: now.Add(-ago).Truncate(time.Second),
			Failure: &task.Failure{Reason: "rejected", Credentials: fp, At: now.Add(-ago)}}
	}
	store := &FakeStore{Prints: map[int64]string{
		2: "fp-2", 3: "fp-3", 4: "fp-4-new", 7: "fp-7", 9: "fp-9",
	}}
	store.Due = map[string][]token.DueConnection{}
	for id := int64(1); id <= 9; id++ {
		store.Due["16"] = append(store.Due["16"], token.DueConnection{ID: id, IntegrationType: "16"})
	}
	queue := &FakeQueue{Archived: map[int64]task.Archived{
		// 1: never failed: enqueued.
		2: failed(10*time.Minute, "fp-2"),            // cooling down, same credentials
		3: failed(cooldown+time.Second, "fp-3"),      // cooldown over
		4: failed(time.Minute, "fp-4-old"),           // credentials changed
		5: {LastFailedAt: now.Add(-time.Minute)},     // archived without a record: waits
		6: {LastFailedAt: now.Add(-2 * cooldown)},    // ... until the cooldown ends
		7: failed(time.Minute, ""),                   // no fingerprint (no inputFields read): waits
		8: {LastFailedAt: now.Add(-cooldown)},        // whole seconds: the failure may be up to 1s later
		9: failed(cooldown-time.Millisecond, "fp-9"), // exact record: a millisecond short
	}}
	s := New(store, queue, Config{
		Targets:  []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}},
		Cooldown: cooldown, Now: func() time.Time { return now },
	}, zap.NewNop(), nil)

	res, err := s.RunOnce(context.Background())
	require.NoError(t, err)
	require.Len(t, res, 1)
	sort.Slice(queue.Retried, func(i, j int) bool { return queue.Retried[i] < queue.Retried[j] })
	assert.Equal(t, []int64{1}, queue.Enqueued)
	assert.Equal(t, []int64{3, 4, 6}, queue.Retried)
	assert.Equal(t, 5, res[0].Failing, "2, 5, 7, 8 and 9 still cool down")
	assert.Equal(t, 3, res[0].Retried)
	assert.Equal(t, 1, res[0].Enqueued)
}
