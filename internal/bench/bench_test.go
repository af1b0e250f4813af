package bench

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestMedianAndPercentile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"odd", []float64{3, 1, 2}, 2},
		{"even", []float64{4, 1, 3, 2}, 2.5},
		{"one", []float64{7}, 7},
		{"infinite middle", []float64{1, math.Inf(1), math.Inf(1), 2}, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, median(tt.in))
		})
	}
	assert.True(t, math.IsNaN(median(nil)))

	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	assert.Equal(t, 5.0, percentile(sorted, 0.5))
	assert.Equal(t, 10.0, percentile(sorted, 0.99))
	assert.Equal(t, 1.0, percentile(sorted, 0))
}

type store struct {
	id           int64
	old, new, at time.Time
}

// TestFreshness: generations are chained per connection, timed from due
// (expiry − Before) to stored, windowed, and misses are counted.
func TestFreshness(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := freshCase{TTL: 30 * time.Second, Before: 10 * time.Second, Interval: 2 * time.Second} // horizon 7s
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	initial := map[int64]time.Time{
		1: at(15), // due at 5
		2: at(20), // due at 10
		3: at(12), // due at 2; stored after it expired
		4: at(14), // due at 4; never stored, expired in the run
		5: at(60), // due at 50: after the window, not stored, not expired
	}
	stores := []store{
		{1, at(15), at(37), at(7)},   // 2 s after due
		{2, at(20), at(45), at(13)},  // 3 s after due; next due at 35, after the window
		{3, at(12), at(45), at(13)},  // 11 s after due, 1 s after expiry
		{1, at(37), at(68), at(28)},  // second generation of 1: due at 27, 1 s after due
		{2, at(99), at(120), at(30)}, // not a generation we know: ignored
	}
	fr := freshness(initial, func(yield func(id int64, old, new, at time.Time) bool) {
		for _, s := range stores {
			if !yield(s.id, s.old, s.new, s.at) {
				return
			}
		}
	}, c, t0, at(40))

	assert.Equal(t, 4, fr.Refreshes)
	assert.Equal(t, 1, fr.AfterExpiry)
	assert.Equal(t, 1, fr.Lapsed, "4 expired in the run and was not renewed")
	// Due in the window [0, 33]: 1 (2 s), 1's second generation (due 27,
	// 1 s), 2 (3 s), 3 (11 s), 4 (never). 1's third and 5 are due later.
	assert.Equal(t, 5, fr.Generations)
	assert.Equal(t, 3*time.Second, fr.P50)
	assert.Equal(t, time.Duration(math.MaxInt64), fr.P99, "an unstored generation is infinitely late")
}
