package provider

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/token"
)

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"absent", "", 0},
		{"seconds", "120", 2 * time.Minute},
		{"zero seconds", "0", 0},
		{"negative", "-5", 0},
		{"HTTP date", "Mon, 23 Nov 2026 10:01:30 GMT", 90 * time.Second},
		{"HTTP date in the past", "Mon, 23 Nov 2026 09:00:00 GMT", 0},
		{"garbage", "soon", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			if tc.header != "" {
				h.Set("Retry-After", tc.header)
			}
			assert.Equal(t, tc.want, RetryAfter(h, now))
		})
	}
}

func TestFailCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("Retry-After", "7")
	for _, status := range []int{http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		a := Answer{Status: status, Header: h}
		f := a.Fail(Transient, "x")
		assert.Equal(t, token.ClassTransient, f.Class)
		assert.Equal(t, 7*time.Second, f.RetryAfter, "HTTP %d", status)
		assert.Equal(t, status, f.Status)
	}
	a := Answer{Status: 200, Header: h}
	assert.Equal(t, 7*time.Second, a.Fail(Unusable, "x").RetryAfter, "an unusable answer honours Retry-After too")
	assert.Zero(t, a.Fail(Permanent, "x").RetryAfter, "a refusal is not retried, whatever the header says")
}
