package fault

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestSIGTERMWithUnstoredTokens — pass condition: a refresher told to stop
// while it holds tokens the database refuses (read-only) never lets them
// vanish silently:
//   - without OUTBOX_KEY it waits for them while it may (DRAIN_TIMEOUT from
//     the signal), and when the database takes writes within that time
//     stores them and exits 0; when it does not, it exits 1 naming the
//     connections whose tokens are lost;
//   - with OUTBOX_KEY it exits at once, saying how many tokens the durable
//     outbox keeps for any replica.
func TestSIGTERMWithUnstoredTokens(t *testing.T) {
	t.Parallel()
	const n = 3
	for _, tc := range []struct {
		name     string
		key      bool
		writable bool // the database takes writes again during the drain
	}{
		{"memory, healed during the drain", false, true},
		{"memory, never healed", false, false},
		{"durable", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
			s := newPrivateSystem(t, m, oauthKind)
			subjects := s.seedOAuth(1, n, time.Now().UTC().Add(-time.Hour))
			s.market.setFaults(rotateNoGrace(time.Second))
			// The drain is the limit of the wait for tokens kept in memory.
			extra := []string{"DRAIN_TIMEOUT=15s"}
			if tc.key {
				extra = append(extra, "OUTBOX_KEY="+outbox.GenerateKey())
			}
			r := s.startRefresher(extra...)
			s.scanOnce()
			eventually(t, 30*time.Second, "the calls in flight", func() bool { return s.market.oauthInFlight() == n })
			m.SetReadOnly(t, true)
			eventually(t, 30*time.Second, "the tokens to be kept", func() bool { return r.count(logKept) == n })

			r.signal(syscall.SIGTERM)
			stopped := time.Now()
			if tc.writable {
				time.Sleep(2 * time.Second)
				m.SetReadOnly(t, false)
			}
			code := r.exit(2 * time.Minute)
			took := time.Since(stopped)
			if !tc.writable {
				m.SetReadOnly(t, false)
			}
			stored := storedCount(t, s.env.IE, subjects)
			lostLine := r.linesWith("stopped with tokens in hand that the database never took")
			durableLine := r.linesWith("tokens kept in the durable outbox at shutdown")
			switch {
			case tc.key:
				assert.Len(t, durableLine, 1, "says the durable outbox keeps them")
				assert.Contains(t, strings.Join(durableLine, ""), fmt.Sprintf(`"kept_tokens":%d`, n))
				assert.Empty(t, lostLine)
				assert.EqualValues(t, n, s.outboxLen(), "the tokens wait in Redis for any replica")
				assert.Less(t, took, 30*time.Second, "nothing to wait for: the outbox outlives the process")
			case tc.writable:
				assert.Equal(t, n, stored, "stored during the drain")
				assert.Empty(t, lostLine)
				assert.Equal(t, 0, code)
			default:
				assert.Zero(t, stored)
				assert.Equal(t, 1, code, "the exit status says tokens were lost")
				if assert.Len(t, lostLine, 1, "names what is lost") {
					var ids []string
					for id := range subjects {
						ids = append(ids, fmt.Sprint(id))
					}
					sort.Strings(ids)
					assert.Contains(t, lostLine[0], `"connection_ids":[`+strings.Join(ids, ",")+`]`)
				}
			}
			figure(t, "case=%q kept=%d stored_during_drain=%d exit=%d exit_after=%s", tc.name, r.count(logKept), stored, code,
				took.Round(100*time.Millisecond))
		})
	}
}
