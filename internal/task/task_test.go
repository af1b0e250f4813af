package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
)

// TestFailureReadsArchivedRecords: a failure record already in Redis,
// written under the JSON key inputFields_fingerprint, still reads, and a
// new one is written under the same key.
func TestFailureReadsArchivedRecords(t *testing.T) {
	t.Parallel()
	f, err := task.ParseFailure([]byte(`{"reason":"rejected","inputFields_fingerprint":"fp-1","at":"2026-01-02T03:04:05Z"}`))
	require.NoError(t, err)
	assert.Equal(t, "fp-1", f.Credentials)
	assert.Equal(t, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), f.At)
	assert.Contains(t, string(task.Failure{Reason: "r", Credentials: "fp-2"}.Marshal()), `"inputFields_fingerprint":"fp-2"`)
}

// TestFailedAt: the handler's exact record wins; asynq's whole-second
// LastFailedAt is rounded up, so FAILURE_COOLDOWN is never counted from
// before the failure; a task archived by hand has no failure time.
func TestFailedAt(t *testing.T) {
	t.Parallel()
	last := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	exact := last.Add(700 * time.Millisecond)
	assert.Equal(t, exact, task.FailedAt(&task.Failure{At: exact}, last))
	assert.Equal(t, last.Add(time.Second), task.FailedAt(nil, last))
	assert.Equal(t, last.Add(time.Second), task.FailedAt(&task.Failure{Reason: "no time recorded"}, last))
	assert.True(t, task.FailedAt(nil, time.Time{}).IsZero())
}
