package fault

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestRejectedCredentials — pass condition: a connection whose credentials
// the marketplace rejects is called once per FAILURE_COOLDOWN, never in a
// loop; when its inputFields are fixed it is refreshed on the next scan,
// without waiting for the cooldown.
func TestRejectedCredentials(t *testing.T) {
	t.Parallel()
	const cooldown = 3 * time.Second
	s := newSystem(t)
	user, password := seller("rejected-" + s.env.Queue)
	expired := time.Now().UTC().Add(-time.Hour)
	s.env.Insert(t, testenv.Row{ID: 1, InputFields: creds(user, "not-the-password-1"), ExpiresAt: &expired,
		AccessToken: testenv.Str("old-1")})
	good := s.conns(2, 3, "16")
	s.startRefresher()
	// The window is counted from before the scanner starts, so it holds
	// the first call whenever it came.
	first := time.Now()
	sc := s.startScanner("FAILURE_COOLDOWN="+cooldown.String(), "SCAN_INTERVAL=500ms")

	eventually(t, 30*time.Second, "the first rejected call", func() bool { return s.market.calls()[user] >= 1 })
	eventually(t, 30*time.Second, "the healthy connections", func() bool { return s.refreshed(good) == 3 })
	// Watch twenty scans (about ten seconds, three cooldowns).
	mark := sc.count(`"msg":"scanned"`)
	eventually(t, 60*time.Second, "twenty more scans", func() bool { return sc.count(`"msg":"scanned"`) >= mark+20 })
	window := time.Since(first)
	calls := s.market.calls()[user]
	allowed := 1 + int(window/cooldown)
	assert.LessOrEqual(t, calls, allowed, "at most one call per cooldown over %s", window)
	assert.GreaterOrEqual(t, calls, 2, "tried again after the cooldown")
	archived, err := s.queue().ListArchived()
	require.NoError(t, err)
	if a, ok := archived[1]; ok {
		assert.Contains(t, a.LastErr, "ajio rejected the credentials")
		assert.NotContains(t, a.LastErr, "not-the-password-1")
	}
	assert.Equal(t, "old-1", *s.rows()[1].AccessToken, "a rejection never clears the stored token")
	for id := range good {
		assert.Equal(t, 1, s.market.calls()[good[id]], "the other connections are not affected")
	}
	figure(t, "cooldown=%s window=%s rejected_calls=%d at_most=%d", cooldown, window.Round(100*time.Millisecond), calls, allowed)

	// Fix the credentials under a scanner whose cooldown is an hour: only
	// the change of inputFields can bring the connection back.
	sc.signal(syscall.SIGTERM)
	require.Equal(t, 0, sc.exit(30*time.Second))
	eventually(t, 30*time.Second, "the last rejection to be archived", func() bool {
		a, err := s.queue().ListArchived()
		// Scheduled are the healthy connections' next refreshes (wake-ups).
		info := s.queueInfo()
		return err == nil && a[1].Failure != nil && info.Size-info.Scheduled == info.Archived
	})
	before := s.market.calls()[user]
	sc = s.startScanner("FAILURE_COOLDOWN=1h", "SCAN_INTERVAL=500ms")
	mark = sc.count(`"msg":"scanned"`)
	eventually(t, 30*time.Second, "two scans under the long cooldown", func() bool { return sc.count(`"msg":"scanned"`) >= mark+2 })
	require.Equal(t, before, s.market.calls()[user], "no call while cooling down with unchanged credentials")

	s.env.IE.MustExec(`UPDATE ie_appinstall_connection SET inputFields = ? WHERE id = 1`, *creds(user, password))
	fixed := time.Now()
	eventually(t, 30*time.Second, "the fixed connection to be refreshed", func() bool {
		return s.refreshed(map[int64]string{1: user}) == 1
	})
	took := time.Since(fixed)
	assert.Contains(t, sc.out.String(), "credentials changed since the permanent failure")
	assert.Equal(t, before+1, s.market.calls()[user], "one call with the new credentials")
	figure(t, "fixed_inputFields_refreshed_after=%s calls_total=%d", took.Round(100*time.Millisecond), s.market.calls()[user])
}

// TestBadRows — pass condition: malformed JSON, a missing password, an
// integration type the refresher has no provider for, NULL inputFields and
// a zero date each affect only their own connection: the failures are
// archived with their reason (never a secret), the good rows are refreshed,
// and the scanner and refresher keep running and refresh a row added later.
func TestBadRows(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	// The scanner knows type 77 (a newer deployment), the refresher does
	// not; type 78 is in no providers file.
	scannerKinds := append(append([]kind{}, s.kinds...), kind{IntegrationType: "77", Kind: "ajio"})
	expired := time.Now().UTC().Add(-time.Hour)
	u1, p1 := seller("zero-date-" + s.env.Queue)
	u2, p2 := seller("unknown-type-" + s.env.Queue)
	u3, p3 := seller("unconfigured-" + s.env.Queue)
	s.env.Insert(t,
		testenv.Row{ID: 1, InputFields: testenv.Str(`{"username":"x@itc.com","password":"secret-malformed-1"`), ExpiresAt: &expired, AccessToken: testenv.Str("keep-1")},
		testenv.Row{ID: 2, InputFields: testenv.Str(`{"username":"nopass@itc.com"}`), ExpiresAt: &expired, AccessToken: testenv.Str("keep-2")},
		testenv.Row{ID: 3, IntegrationType: "77", InputFields: creds(u2, p2), ExpiresAt: &expired, AccessToken: testenv.Str("keep-3")},
		testenv.Row{ID: 4, InputFields: nil, ExpiresAt: &expired, AccessToken: testenv.Str("keep-4")},
		testenv.Row{ID: 5, InputFields: creds(u1, p1), AccessToken: testenv.Str("zero-5")},
		testenv.Row{ID: 6, IntegrationType: "78", InputFields: creds(u3, p3), ExpiresAt: &expired, AccessToken: testenv.Str("keep-6")},
	)
	// A zero DATETIME needs a session that allows it.
	ctx := context.Background()
	conn, err := s.env.IE.Connx(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `SET SESSION sql_mode = ''`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `UPDATE ie_appinstall_connection SET accessTokenExpiryAt = '0000-00-00 00:00:00' WHERE id = 5`)
	require.NoError(t, err)
	conn.Close()
	good := s.conns(10, 3, "16")

	r := s.startRefresher()
	env := append(s.common(s.providersFile("scanner-providers.yaml", scannerKinds)),
		"IE_DB_DSN="+s.env.IEDSN, "SCAN_INTERVAL=500ms", "FAILURE_COOLDOWN=1h")
	sc := startProc(t, "scanner", bin.scanner, env)

	want := map[int64]string{
		1: "malformed inputFields: not valid JSON",
		2: `malformed inputFields: "password" is missing or empty`,
		3: `no provider is configured for integration type "77"`,
		4: "malformed inputFields: empty",
	}
	eventually(t, 30*time.Second, "the four bad rows to be archived", func() bool {
		a, err := s.queue().ListArchived()
		return err == nil && len(a) == len(want)
	})
	eventually(t, 30*time.Second, "the good rows and the zero date to be refreshed", func() bool {
		return s.refreshed(good) == 3 && s.refreshed(map[int64]string{5: u1}) == 1
	})
	archived, err := s.queue().ListArchived()
	require.NoError(t, err)
	for id, reason := range want {
		require.Contains(t, archived, id)
		assert.Contains(t, archived[id].LastErr, reason, "connection %d fails with its own reason", id)
		assert.NotContains(t, archived[id].LastErr, "secret-malformed-1")
		assert.Equal(t, fmt.Sprintf("keep-%d", id), *s.rows()[id].AccessToken, "a failure never clears the stored token")
	}
	assert.Zero(t, s.market.calls()[u3], "a type in no providers file is never touched")
	assert.Equal(t, "keep-6", *s.rows()[6].AccessToken)

	// Both keep running: a connection added now is refreshed too.
	late := s.conns(20, 1, "16")
	eventually(t, 30*time.Second, "a connection added later to be refreshed", func() bool { return s.refreshed(late) == 1 })
	assert.True(t, r.running(), "the refresher keeps running")
	assert.True(t, sc.running(), "the scanner keeps running")
	for _, p := range []*proc{r, sc} {
		for _, secret := range []string{"secret-malformed-1", p1, p2, p3} {
			assert.False(t, strings.Contains(p.out.String(), secret), "%s logged a secret", p.name)
		}
	}
	figure(t, "bad_rows=%d archived_with_reason=%d good_rows_refreshed=%d zero_date_refreshed=1 processes_running=2",
		len(want)+2, len(want), len(good)+len(late))
}
