package bench

import (
	"math"
	"slices"
)

// median of v (NaN when empty); the mean of the middle two for an even count.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	if math.IsInf(s[m-1], 1) || math.IsInf(s[m], 1) {
		return math.Max(s[m-1], s[m])
	}
	return (s[m-1] + s[m]) / 2
}

// percentile of sorted values by the nearest-rank method (NaN when empty).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// pairedRatio is the median over runs of num[i] ÷ den[i]: each product
// figure over the ceiling measured just before it, under the same load.
func pairedRatio(num, den []float64) float64 {
	v := make([]float64, 0, len(num))
	for i := range min(len(num), len(den)) {
		v = append(v, num[i]/den[i])
	}
	return median(v)
}

func ints(v []int64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
