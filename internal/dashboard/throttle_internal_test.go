package dashboard

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestThrottleClientKey(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"203.0.113.7:51234":           "203.0.113.7",
		"[2001:db8:1:2:aaaa::1]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:8080": "2001:db8:1:2::/64",
		"[::ffff:10.0.0.1]:80":        "10.0.0.1",
	} {
		assert.Equal(t, want, client(&http.Request{RemoteAddr: addr}), addr)
	}
}

// TestThrottleTableIsBounded: failures from ever new addresses never grow
// the table past maxClients, and a lockout in force survives the pruning.
func TestThrottleTableIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Now()
	th := newThrottle()
	th.now = func() time.Time { return now }
	for range MaxFailedLogins {
		th.fail("locked")
	}
	for i := range 3 * maxClients {
		th.fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	assert.LessOrEqual(t, len(th.clients), maxClients)
	assert.Equal(t, LockoutPeriod, th.locked("locked"))
}
