package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func creds(user, pass string) *string {
	return testenv.Str(`{"username":"` + user + `","password":"` + pass + `"}`)
}

func seller(n string) (string, string) {
	u := "seller-" + n + sandbox.GeneratedDomain
	return u, sandbox.Password(u)
}

// TestAjioPipeline is the first issue's acceptance run: seeded rows, a scan,
// the refresher, and the rows asserted.
func TestAjioPipeline(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	now := time.Now().UTC().Truncate(time.Second)
	expired := now.Add(-time.Hour)
	soon := now.Add(5 * time.Minute)   // inside the 10m window: due
	later := now.Add(20 * time.Minute) // outside it: not due
	u12, p12 := seller("12")
	u13, p13 := seller("13")
	u14, p14 := seller("14")
	u15, p15 := seller("15")
	u16, p16 := seller("16")
	u20, p20 := seller("20")
	rejectedUser := "mallory@sandbox.other"

	b.env.Insert(t,
		testenv.Row{ID: 11, InputFields: creds("abc@itc.com", "abc123"), ExpiresAt: &expired},
		testenv.Row{ID: 99, InputFields: creds("brand@itc.com", "pqr123"), ExpiresAt: &expired},
		testenv.Row{ID: 12, InputFields: creds(u12, p12)}, // NULL expiry: never generated
		testenv.Row{ID: 20, InputFields: creds(u20, p20), ExpiresAt: &soon, AccessToken: testenv.Str("old-20"), RefreshToken: testenv.Str("old-rt-20")},
		// Untouched:
		testenv.Row{ID: 13, InputFields: creds(u13, p13), ExpiresAt: &later, AccessToken: testenv.Str("keep-13")},
		testenv.Row{ID: 14, InputFields: creds(u14, p14), ExpiresAt: &expired, IsActive: "inactive", AccessToken: testenv.Str("keep-14")},
		testenv.Row{ID: 15, InputFields: creds(u15, p15), ExpiresAt: &expired, Status: "1", AccessToken: testenv.Str("keep-15")},
		testenv.Row{ID: 16, InputFields: creds(u16, p16), ExpiresAt: &expired, IntegrationType: "42", AccessToken: testenv.Str("keep-16")},
		// Failing on their own:
		testenv.Row{ID: 17, InputFields: testenv.Str(`{"username":"x@itc.com","password":"hunter2-malformed"`), ExpiresAt: &expired, AccessToken: testenv.Str("keep-17")},
		testenv.Row{ID: 18, InputFields: creds(rejectedUser, "wrong-password-18"), ExpiresAt: &expired, AccessToken: testenv.Str("keep-18")},
		testenv.Row{ID: 19, InputFields: testenv.Str(`{"username":"nopass@itc.com"}`), ExpiresAt: &expired},
	)
	untouched := map[int64]testenv.Stored{}
	for _, id := range []int64{13, 14, 15, 16, 17, 18, 19} {
		untouched[id] = b.env.Get(t, id)
	}

	r := b.scanOnce(t)
	assert.Equal(t, 7, r.Due, "11, 99, 12, 20, 17, 18, 19 are due")
	assert.Equal(t, 7, r.Enqueued)
	assert.Equal(t, 0, r.AlreadyQueued)

	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "all refreshes to finish", b.settled)

	users := map[int64]string{11: "abc@itc.com", 99: "brand@itc.com", 12: u12, 20: u20}
	for id, user := range users {
		row := b.env.Get(t, id)
		require.NotNil(t, row.AccessToken, "connection %d", id)
		owner, ok := b.sandbox.IssuedTo(*row.AccessToken)
		assert.True(t, ok, "connection %d holds a token the sandbox issued", id)
		assert.Equal(t, user, owner, "connection %d holds its own seller's token", id)
		require.NotNil(t, row.RefreshToken)
		assert.True(t, strings.HasPrefix(*row.RefreshToken, "ajio-rt-"), "connection %d stored the refresh token", id)
		require.NotNil(t, row.ExpiresAt)
		assert.WithinDuration(t, now.Add(30*time.Minute), *row.ExpiresAt, 10*time.Second,
			"connection %d expires 30 minutes after it was obtained", id)
		assert.Equal(t, 1, b.sandbox.Calls(user), "connection %d: one call", id)
	}
	for id, before := range untouched {
		assert.Equal(t, before, b.env.Get(t, id), "connection %d must be left as it was", id)
	}
	for _, u := range []string{u13, u14, u15, u16} {
		assert.Zero(t, b.sandbox.Calls(u), "%s is not due or not active: no call", u)
	}
	assert.Equal(t, 1, b.sandbox.Calls(rejectedUser), "rejected credentials: exactly one call")

	archived := b.archived(t)
	require.Len(t, archived, 3, "17, 18 and 19 failed permanently")
	assert.Contains(t, archived[17].LastErr, "malformed inputFields: not valid JSON")
	assert.Contains(t, archived[18].LastErr, "ajio rejected the credentials")
	assert.Contains(t, archived[19].LastErr, `"password" is missing`)

	// A second scan makes no second marketplace call: the refreshed rows are
	// no longer due and the failed ones cool down.
	callsBefore := b.sandbox.Stats().Calls
	r2 := b.scanOnce(t)
	assert.Equal(t, 3, r2.Due)
	assert.Equal(t, 0, r2.Enqueued)
	assert.Equal(t, 3, r2.Failing)
	assert.True(t, b.settled(), "nothing was queued by the second scan")
	assert.Equal(t, callsBefore, b.sandbox.Stats().Calls)

	// No password and no issued token anywhere in Redis or the logs.
	secrets := []string{"abc123", "pqr123", p12, p20, "hunter2-malformed", "wrong-password-18", "old-rt-20"}
	for id := range users {
		row := b.env.Get(t, id)
		secrets = append(secrets, *row.AccessToken, *row.RefreshToken)
	}
	dump, logs := b.env.RedisDump(t), b.logs.String()
	require.Contains(t, logs, `"connection_id":11`, "the logs are captured")
	require.Contains(t, dump, `"connection_id":17`, "the archived payloads are captured")
	for _, s := range secrets {
		assert.NotContains(t, dump, s, "Redis holds a secret")
		assert.NotContains(t, logs, s, "the logs hold a secret")
	}
}

// TestOverlappingScansEnqueueOnce runs three scans at once: each due
// connection is enqueued exactly once, the rest count as already queued.
func TestOverlappingScansEnqueueOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	expired := time.Now().UTC().Add(-time.Hour)
	var rows []testenv.Row
	for i := int64(1); i <= 40; i++ {
		u, p := seller(string(rune('a'+i%26)) + time.Now().Format("150405") + string(rune('a'+i/26)))
		rows = append(rows, testenv.Row{ID: i, InputFields: creds(u, p), ExpiresAt: &expired})
	}
	b.env.Insert(t, rows...)

	var wg sync.WaitGroup
	results := make([]scan.Result, 3)
	for i := range results {
		wg.Go(func() {
			res, err := b.scanner(scan.Config{Concurrency: 4}).RunOnce(context.Background())
			assert.NoError(t, err)
			results[i] = res[0]
		})
	}
	wg.Wait()
	enq, already := 0, 0
	for _, r := range results {
		assert.Equal(t, 40, r.Due)
		enq += r.Enqueued
		already += r.AlreadyQueued
	}
	assert.Equal(t, 40, enq, "one task per due connection")
	assert.Equal(t, 80, already)

	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "refreshes to finish", b.settled)
	st := b.sandbox.Stats()
	assert.Equal(t, 40, st.Calls, "exactly one marketplace call per due connection")
	assert.Equal(t, 40, st.Issued)
}

// TestTransientFailureHeals: a marketplace answering 500s and HTML pages is
// retried with backoff, and the connection is refreshed once it recovers.
func TestTransientFailureHeals(t *testing.T) {
	t.Parallel()
	b := setup(t, options{})
	expired := time.Now().UTC().Add(-time.Hour)
	u, p := seller("transient")
	b.env.Insert(t, testenv.Row{ID: 5, InputFields: creds(u, p), ExpiresAt: &expired, AccessToken: testenv.Str("old-5")})
	b.sandbox.SetFaults(sandbox.Faults{ErrorRate: 1})
	b.scanOnce(t)
	b.startRefresher(t)

	testenv.Eventually(t, 10*time.Second, "three failed calls", func() bool { return b.sandbox.Calls(u) >= 3 })
	assert.Equal(t, "old-5", *b.env.Get(t, 5).AccessToken, "a failure never clears the stored token")
	b.sandbox.SetFaults(sandbox.Faults{HTMLRate: 1})
	n := b.sandbox.Calls(u)
	testenv.Eventually(t, 10*time.Second, "failed calls on HTML", func() bool { return b.sandbox.Calls(u) >= n+2 })
	assert.Equal(t, "old-5", *b.env.Get(t, 5).AccessToken)

	b.sandbox.SetFaults(sandbox.Faults{})
	testenv.Eventually(t, 10*time.Second, "the refresh to heal", func() bool {
		row := b.env.Get(t, 5)
		return row.AccessToken != nil && strings.HasPrefix(*row.AccessToken, "ajio-at-")
	})
	assert.Empty(t, b.archived(t), "a transient failure is never archived")
	assert.Contains(t, b.logs.String(), "HTTP 500")
	assert.Contains(t, b.logs.String(), "HTML")
}
