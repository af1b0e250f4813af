package e2e

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// providersYAML returns the harness option of a providers file whose
// SANDBOX_URL is the test's sandbox, parsed and validated as at start-up.
func providersYAML(t *testing.T, yaml string) func(string) []registry.Entry {
	return func(sandboxURL string) []registry.Entry {
		entries, err := registry.Parse([]byte(strings.ReplaceAll(yaml, "SANDBOX_URL", sandboxURL)), "", os.Getenv)
		require.NoError(t, err)
		return entries
	}
}

// oauthProviders is type 42 → oauth2_refresh at the sandbox, with the
// sandbox's default client as the provider-level fallback.
const oauthProviders = `
providers:
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: SANDBOX_URL/oauth/token
    refresh_before: 10m
    client_id: ` + sandbox.DefaultClientID + `
    client_secret: ` + sandbox.DefaultClientSecret + `
    allow_inline_secrets: true # the sandbox's public development secret
`

func clientFields(id, secret string) *string {
	return testenv.Str(`{"client_id":"` + id + `","client_secret":"` + secret + `"}`)
}

// assertNoSecrets checks Redis (every asynq key) and the logs.
func assertNoSecrets(t *testing.T, b *bundle, secrets []string) {
	t.Helper()
	dump, logs := b.env.RedisDump(t), b.logs.String()
	require.NotEmpty(t, logs, "the logs are captured")
	for _, s := range secrets {
		require.NotEmpty(t, s)
		assert.NotContains(t, dump, s, "Redis holds a secret")
		assert.NotContains(t, logs, s, "the logs hold a secret")
		if q := url.QueryEscape(s); q != s {
			assert.NotContains(t, dump, q, "Redis holds a query-escaped secret")
			assert.NotContains(t, logs, q, "the logs hold a query-escaped secret")
		}
	}
}

// TestOAuth2Pipeline: success with the connection's own client credentials
// (snake and camel case) and with the provider's, rotation stored, rejected
// clients and grants archived after one call with the rows unchanged.
func TestOAuth2Pipeline(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true}) // no grace: an old token is refused at once
	b.sandbox.AddClient("app-3", "app-3-secret")
	b.sandbox.AddRefreshToken("app-3", "o3", "rt-registered-3")
	now := time.Now().UTC().Truncate(time.Second)
	expired := now.Add(-time.Hour)
	later := now.Add(30 * time.Minute)
	rt := map[int64]string{1: sandbox.RefreshToken("o1"), 2: sandbox.RefreshToken("o2"), 3: "rt-registered-3",
		4: sandbox.RefreshToken("o4"), 5: "rt-revoked-5", 7: sandbox.RefreshToken("o7")}
	at := func(s string) *string { return testenv.Str(s) }

	b.env.Insert(t,
		testenv.Row{ID: 1, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret),
			RefreshToken: at(rt[1]), AccessToken: at("old-at-1"), ExpiresAt: &expired},
		testenv.Row{ID: 2, IntegrationType: "42", InputFields: testenv.Str(`{}`), RefreshToken: at(rt[2])}, // provider's client
		testenv.Row{ID: 3, IntegrationType: "42", InputFields: testenv.Str(`{"clientId":"app-3","clientSecret":"app-3-secret"}`),
			RefreshToken: at(rt[3]), ExpiresAt: &expired},
		// Failing on their own:
		testenv.Row{ID: 4, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, "wrong-secret-4"),
			RefreshToken: at(rt[4]), AccessToken: at("keep-4"), ExpiresAt: &expired},
		testenv.Row{ID: 5, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret),
			RefreshToken: at(rt[5]), AccessToken: at("keep-5"), ExpiresAt: &expired},
		testenv.Row{ID: 6, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret),
			AccessToken: at("keep-6"), ExpiresAt: &expired}, // no refresh token
		// Not due:
		testenv.Row{ID: 7, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret),
			RefreshToken: at(rt[7]), AccessToken: at("keep-7"), ExpiresAt: &later},
	)
	untouched := map[int64]testenv.Stored{}
	for _, id := range []int64{4, 5, 6, 7} {
		untouched[id] = b.env.Get(t, id)
	}

	r := b.scanOnce(t)
	assert.Equal(t, 6, r.Due)
	assert.Equal(t, 6, r.Enqueued)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "all refreshes to finish", b.settled)

	secrets := []string{sandbox.DefaultClientSecret, "app-3-secret", "wrong-secret-4", "old-at-1", "keep-4"}
	for id, subject := range map[int64]string{1: "o1", 2: "o2", 3: "o3"} {
		row := b.env.Get(t, id)
		require.NotNil(t, row.AccessToken, "connection %d", id)
		owner, ok := b.sandbox.IssuedTo(*row.AccessToken)
		assert.True(t, ok, "connection %d holds a token the sandbox issued", id)
		assert.Equal(t, subject, owner, "connection %d holds its own grant's token", id)
		require.NotNil(t, row.RefreshToken)
		assert.NotEqual(t, rt[id], *row.RefreshToken, "connection %d stored the rotated refresh token", id)
		assert.True(t, b.sandbox.RefreshTokenValid(*row.RefreshToken), "connection %d holds the live refresh token", id)
		assert.False(t, b.sandbox.RefreshTokenValid(rt[id]), "connection %d's old refresh token was rotated away", id)
		require.NotNil(t, row.ExpiresAt)
		assert.WithinDuration(t, now.Add(sandbox.DefaultOAuthExpiresIn*time.Second), *row.ExpiresAt, 10*time.Second,
			"connection %d expires expires_in after it was obtained", id)
		assert.Equal(t, 1, b.sandbox.Calls(subject), "connection %d: one call", id)
		secrets = append(secrets, *row.AccessToken, *row.RefreshToken, rt[id])
	}
	for id, before := range untouched {
		assert.Equal(t, before, b.env.Get(t, id), "connection %d must be left as it was", id)
	}
	assert.Equal(t, 1, b.sandbox.Calls("o4"), "rejected client: exactly one call")
	assert.Zero(t, b.sandbox.Calls("o7"), "not due: no call")
	assert.Equal(t, 5, b.sandbox.Stats().ByFlow["oauth2_refresh"], "1, 2, 3, 4 and 5 called once; 6 never")

	archived := b.archived(t)
	require.Len(t, archived, 3, "4, 5 and 6 failed permanently")
	assert.Contains(t, archived[4].LastErr, "invalid_client")
	assert.Contains(t, archived[5].LastErr, "invalid_grant")
	assert.Contains(t, archived[6].LastErr, "no refresh token stored")

	secrets = append(secrets, rt[4], rt[5], rt[7])
	assertNoSecrets(t, b, secrets)
}

// TestOAuth2RotationAcrossRefreshes: with strict rotation (no grace), two
// consecutive refreshes succeed only if the second uses the refresh token the
// first stored.
func TestOAuth2RotationAcrossRefreshes(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	// Tokens of 5 minutes are due again at once under a 10-minute
	// refresh_before, so the second scan refreshes again.
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true, OAuthExpiresIn: 300})
	rt0 := sandbox.RefreshToken("rot")
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42",
		InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret), RefreshToken: testenv.Str(rt0)})
	b.startRefresher(t)

	refreshed := func(n int) (string, string) {
		t.Helper()
		assert.Equal(t, 1, b.scanOnce(t).Enqueued)
		testenv.Eventually(t, 20*time.Second, "refresh to finish", func() bool {
			return b.settled() && b.sandbox.Calls("rot") == n
		})
		row := b.env.Get(t, 1)
		require.NotNil(t, row.AccessToken)
		require.NotNil(t, row.RefreshToken)
		return *row.AccessToken, *row.RefreshToken
	}
	at1, rt1 := refreshed(1)
	assert.NotEqual(t, rt0, rt1, "the first refresh stored the rotated token")
	at2, rt2 := refreshed(2)
	assert.NotEqual(t, at1, at2)
	assert.NotEqual(t, rt1, rt2, "the second refresh used rt1 and stored its successor")

	assert.False(t, b.sandbox.RefreshTokenValid(rt0))
	assert.False(t, b.sandbox.RefreshTokenValid(rt1))
	assert.True(t, b.sandbox.RefreshTokenValid(rt2), "the stored refresh token is the live one")
	assert.Empty(t, b.archived(t), "no refresh was refused")
	assert.Equal(t, 0, b.sandbox.Stats().Rejected)
	assertNoSecrets(t, b, []string{sandbox.DefaultClientSecret, rt0, rt1, rt2, at1, at2})
}

// TestOAuth2TransientFailureHeals: 500s and 429s are retried (honouring
// Retry-After) without consuming the refresh token; then the refresh lands.
func TestOAuth2TransientFailureHeals(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	rt0 := sandbox.RefreshToken("flaky")
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: clientFields(sandbox.DefaultClientID, sandbox.DefaultClientSecret),
		RefreshToken: testenv.Str(rt0), AccessToken: testenv.Str("old-1"), ExpiresAt: &expired})
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true, ErrorRate: 1})
	b.scanOnce(t)
	b.startRefresher(t)

	testenv.Eventually(t, 10*time.Second, "three failed calls", func() bool { return b.sandbox.Calls("flaky") >= 3 })
	assert.Equal(t, "old-1", *b.env.Get(t, 1).AccessToken, "a failure never clears the stored token")
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true, RateLimitRate: 1, RetryAfterSeconds: 1})
	n := b.sandbox.Calls("flaky")
	testenv.Eventually(t, 10*time.Second, "a rate-limited call", func() bool { return b.sandbox.Calls("flaky") >= n+1 })
	assert.Equal(t, rt0, *b.env.Get(t, 1).RefreshToken)

	b.sandbox.SetFaults(sandbox.Faults{Rotate: true})
	testenv.Eventually(t, 15*time.Second, "the refresh to heal", func() bool {
		row := b.env.Get(t, 1)
		return row.AccessToken != nil && strings.HasPrefix(*row.AccessToken, "oauth-at-")
	})
	row := b.env.Get(t, 1)
	assert.NotEqual(t, rt0, *row.RefreshToken, "the rotated token was stored")
	assert.True(t, b.sandbox.RefreshTokenValid(*row.RefreshToken))
	assert.Empty(t, b.archived(t), "a transient failure is never archived")
	logs := b.logs.String()
	assert.Contains(t, logs, "HTTP 500")
	assert.Contains(t, logs, "rate limiting (HTTP 429)")
	assertNoSecrets(t, b, []string{sandbox.DefaultClientSecret, rt0, *row.RefreshToken, *row.AccessToken})
}

// TestOAuth2NewRefreshTokenEndsTheCooldown: after invalid_grant the
// connection waits out the cooldown, unless an operator stores a new refresh
// token: the next scan then tries again at once (the failure's fingerprint
// covers the refresh token as well as inputFields).
func TestOAuth2NewRefreshTokenEndsTheCooldown(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: testenv.Str(`{}`),
		RefreshToken: testenv.Str("rt-revoked"), AccessToken: testenv.Str("keep-1"), ExpiresAt: &expired})
	b.scanOnce(t)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "the refresh to fail", b.settled)
	require.Contains(t, b.archived(t)[1].LastErr, "invalid_grant")

	r := b.scanOnce(t)
	assert.Equal(t, 1, r.Failing, "same refresh token: cooling down")
	assert.Equal(t, 0, r.Retried)

	b.env.IE.MustExec(`UPDATE ie_appinstall_connection SET refreshToken = ? WHERE id = 1`, sandbox.RefreshToken("fixed-1"))
	r = b.scanOnce(t)
	assert.Equal(t, 1, r.Retried, "a new refresh token is tried at once")
	testenv.Eventually(t, 20*time.Second, "the connection to be refreshed", func() bool {
		row := b.env.Get(t, 1)
		owner, _ := b.sandbox.IssuedTo(*row.AccessToken)
		return owner == "fixed-1"
	})
	assert.Empty(t, b.archived(t))
}
