package provider

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

func TestStatusFailureCarriesRetryAfter(t *testing.T) {
	t.Parallel()
	h := http.Header{}
	h.Set("Retry-After", "7")
	f := StatusFailure("ajio", &Response{Status: http.StatusTooManyRequests, Header: h})
	assert.False(t, f.Permanent)
	assert.Equal(t, 7*time.Second, f.RetryAfter)
	f = StatusFailure("ajio", &Response{Status: http.StatusServiceUnavailable, Header: h})
	assert.False(t, f.Permanent)
	assert.Equal(t, 7*time.Second, f.RetryAfter, "a 503 may carry Retry-After too")
}
