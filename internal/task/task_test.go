package task_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
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

// TestFailureRecordsTheClass: a record holds the failure's class as its
// word and its reason apart; a record written before it held a class (its
// reason the failure's text, or a bare reason) reads back the same.
func TestFailureRecordsTheClass(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b := task.Record(token.Permanent("credentials rejected (401)"), at).Marshal()
	assert.Contains(t, string(b), `"class":"permanent"`)
	assert.Contains(t, string(b), `"reason":"credentials rejected (401)"`)
	for name, record := range map[string]string{
		"now":          string(b),
		"old text":     `{"reason":"permanent: credentials rejected (401)","at":"2026-01-02T03:04:05Z"}`,
		"old, with fp": `{"reason":"permanent: credentials rejected (401)","inputFields_fingerprint":"fp-1","at":"2026-01-02T03:04:05Z"}`,
		"bare reason":  `{"reason":"credentials rejected (401)","at":"2026-01-02T03:04:05Z"}`,
	} {
		f, err := task.ParseFailure([]byte(record))
		require.NoError(t, err, name)
		assert.Equal(t, token.ClassPermanent, f.Err().Class, name)
		assert.Equal(t, "credentials rejected (401)", f.Err().Reason, name)
		assert.Equal(t, "permanent: credentials rejected (401)", f.Err().Error(), name)
		assert.Equal(t, at, f.At, name)
	}
	_, err := task.ParseFailure([]byte(`{"class":"fatal","reason":"x"}`))
	assert.Error(t, err, "an unknown class is not read as another")
}

// TestLastFailure: asynq's last error reads back as the failure it is,
// without the suffix asynq adds to a task given up.
func TestLastFailure(t *testing.T) {
	t.Parallel()
	for lastErr, want := range map[string]*token.Failure{
		"transient: ajio answered HTTP 503":                              token.Transient("ajio answered HTTP 503"),
		"unusable: ajio answered HTTP 200 that is not a token":           token.Unusable("ajio answered HTTP 200 that is not a token"),
		"permanent: credentials rejected (401): skip retry for the task": token.Permanent("credentials rejected (401)"),
	} {
		f, msg := task.LastFailure(lastErr)
		assert.Equal(t, want, f, lastErr)
		assert.Equal(t, want.Error(), msg)
	}
	for _, lastErr := range []string{"deferred: ajio circuit breaker is open", "no provider is configured for integration type \"9\": skip retry for the task"} {
		f, msg := task.LastFailure(lastErr)
		assert.Nil(t, f, lastErr)
		assert.NotContains(t, msg, "skip retry", lastErr)
	}
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

// TestDeferredReadsBack: a deferral's text reads back as its reason, and
// no failure's text reads as a deferral.
func TestDeferredReadsBack(t *testing.T) {
	t.Parallel()
	reason, ok := task.DeferredReason(task.Deferred("ajio rate limit (5/s): 3 calls waiting"))
	assert.True(t, ok)
	assert.Equal(t, "ajio rate limit (5/s): 3 calls waiting", reason)
	for _, lastErr := range []string{token.Transient("deferred: x").Error(), "permanent: credentials rejected (401)", ""} {
		_, ok := task.DeferredReason(lastErr)
		assert.False(t, ok, lastErr)
	}
}
