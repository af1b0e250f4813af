package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

const unicommerceProviders = `
providers:
  - integration_type: "43"
    kind: unicommerce
    base_url: SANDBOX_URL
    token_ttl: 24h
    refresh_before: 2h
    timeout: 300ms
`

func ucRow(id int64, user, pass string) testenv.Row {
	return testenv.Row{ID: id, IntegrationType: "43", InputFields: creds(user, pass)}
}

// TestUnicommercePipeline: success (a password that query encoding changes,
// a generated seller, a token about to expire), rejected credentials
// archived after one call with the row unchanged, malformed inputFields
// never sent; no password in Redis or the logs in any form.
func TestUnicommercePipeline(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, unicommerceProviders)})
	const odd = `p&ss=w0rd 1%+/?#`
	b.sandbox.AddSeller("uc-1@itc.com", odd)
	u2, p2 := seller("uc-2")
	u3, p3 := seller("uc-3")
	u6, p6 := seller("uc-6")
	now := time.Now().UTC().Truncate(time.Second)
	expired := now.Add(-time.Hour)
	soon := now.Add(time.Hour)      // inside the 2h window: due
	later := now.Add(5 * time.Hour) // outside it

	r1 := ucRow(1, "uc-1@itc.com", odd)
	r1.ExpiresAt = &expired
	r2 := ucRow(2, u2, p2) // never generated
	r3 := ucRow(3, u3, p3)
	r3.ExpiresAt, r3.AccessToken, r3.RefreshToken = &soon, testenv.Str("old-3"), testenv.Str("keep-rt-3")
	r4 := ucRow(4, "uc-4@itc.com", "wrong-password-4")
	r4.ExpiresAt, r4.AccessToken = &expired, testenv.Str("keep-4")
	r5 := testenv.Row{ID: 5, IntegrationType: "43", InputFields: testenv.Str(`{"username":"uc-5@itc.com"}`), ExpiresAt: &expired}
	r6 := ucRow(6, u6, p6)
	r6.ExpiresAt, r6.AccessToken = &later, testenv.Str("keep-6")
	b.env.Insert(t, r1, r2, r3, r4, r5, r6)
	untouched := map[int64]testenv.Stored{4: b.env.Get(t, 4), 5: b.env.Get(t, 5), 6: b.env.Get(t, 6)}

	r := b.scanOnce(t)
	assert.Equal(t, 5, r.Due, "1, 2, 3, 4, 5")
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "all refreshes to finish", b.settled)

	secrets := []string{odd, p2, p3, p6, "wrong-password-4", "old-3", "keep-rt-3"}
	for id, user := range map[int64]string{1: "uc-1@itc.com", 2: u2, 3: u3} {
		row := b.env.Get(t, id)
		require.NotNil(t, row.AccessToken, "connection %d", id)
		owner, ok := b.sandbox.IssuedTo(*row.AccessToken)
		assert.True(t, ok, "connection %d holds a token the sandbox issued", id)
		assert.Equal(t, user, owner, "connection %d holds its own seller's token", id)
		require.NotNil(t, row.ExpiresAt)
		assert.WithinDuration(t, now.Add(24*time.Hour), *row.ExpiresAt, 10*time.Second,
			"connection %d expires token_ttl after it was obtained", id)
		assert.Equal(t, 1, b.sandbox.Calls(user), "connection %d: one call", id)
		secrets = append(secrets, *row.AccessToken)
	}
	assert.Nil(t, b.env.Get(t, 1).RefreshToken, "unicommerce issues no refresh token")
	assert.Equal(t, "keep-rt-3", *b.env.Get(t, 3).RefreshToken, "a stored refresh token is kept")
	for id, before := range untouched {
		assert.Equal(t, before, b.env.Get(t, id), "connection %d must be left as it was", id)
	}
	assert.Equal(t, 1, b.sandbox.Calls("uc-4@itc.com"), "rejected credentials: exactly one call")
	assert.Zero(t, b.sandbox.Calls("uc-5@itc.com"), "malformed inputFields: no call")
	assert.Zero(t, b.sandbox.Calls(u6), "not due: no call")

	archived := b.archived(t)
	require.Len(t, archived, 2)
	assert.Contains(t, archived[4].LastErr, "unicommerce rejected the credentials (status FAILED, HTTP 200)")
	assert.Contains(t, archived[5].LastErr, `"password" is missing`)
	assertNoSecrets(t, b, secrets)
	assert.NotContains(t, b.logs.String(), "password=")
	assert.NotContains(t, b.env.RedisDump(t), "password=")
}

// TestUnicommerceTransientFailureHeals: garbage, hangs past the provider's
// timeout and HTML pages are retried; the refresh lands when they stop, and
// no failure's text carries the query string.
func TestUnicommerceTransientFailureHeals(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, unicommerceProviders)})
	u, p := seller("uc-flaky")
	expired := time.Now().UTC().Add(-time.Hour)
	row := ucRow(1, u, p)
	row.ExpiresAt, row.AccessToken = &expired, testenv.Str("old-1")
	b.env.Insert(t, row)
	b.sandbox.SetFaults(sandbox.Faults{GarbageRate: 1})
	b.scanOnce(t)
	b.startRefresher(t)

	testenv.Eventually(t, 10*time.Second, "failed calls on garbage", func() bool { return b.sandbox.Calls(u) >= 2 })
	b.sandbox.SetFaults(sandbox.Faults{HangRate: 1})
	n := b.sandbox.Calls(u)
	testenv.Eventually(t, 15*time.Second, "calls that time out", func() bool { return b.sandbox.Calls(u) >= n+2 })
	b.sandbox.SetFaults(sandbox.Faults{HTMLRate: 1})
	n = b.sandbox.Calls(u)
	testenv.Eventually(t, 10*time.Second, "failed calls on HTML", func() bool { return b.sandbox.Calls(u) >= n+1 })
	assert.Equal(t, "old-1", *b.env.Get(t, 1).AccessToken, "a failure never clears the stored token")

	b.sandbox.SetFaults(sandbox.Faults{})
	testenv.Eventually(t, 15*time.Second, "the refresh to heal", func() bool {
		row := b.env.Get(t, 1)
		return row.AccessToken != nil && strings.HasPrefix(*row.AccessToken, "uc-at-")
	})
	assert.Empty(t, b.archived(t), "a transient failure is never archived")
	logs := b.logs.String()
	assert.Contains(t, logs, "(garbage) that is not a token response")
	assert.Contains(t, logs, "did not answer within 300ms")
	assert.Contains(t, logs, "HTML")
	assert.NotContains(t, logs, "password=")
	assertNoSecrets(t, b, []string{p, *b.env.Get(t, 1).AccessToken})
}
