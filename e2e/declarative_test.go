package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// shopzoneProviders is the sandbox's declarative-only marketplace.
var shopzoneProviders = "providers:\n" + strings.ReplaceAll(sandbox.ShopzoneEntry, "BASE_URL", "SANDBOX_URL")

// TestHTTPTokenPipeline: the http_token kind end to end on MariaDB and
// Redis: Shopzone's token (data.auth.token), refresh token and absolute
// expiry stored; a rejected login (BAD_LOGIN in an HTTP 200) archived after
// one call with the row unchanged; a server failure in an HTTP 200
// (MAINTENANCE) retried until it heals; no password in Redis or the logs.
func TestHTTPTokenPipeline(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, shopzoneProviders)})
	b.sandbox.SetFaults(sandbox.Faults{ShopzoneExpiresIn: 7200, ShapeBy: map[string]string{}})
	u1, p1 := seller("sz-1")
	u2, p2 := seller("sz-2")
	u3, p3 := seller("sz-3")
	now := time.Now().UTC().Truncate(time.Second)
	expired := now.Add(-time.Hour)
	row := func(id int64, user, pass string) testenv.Row {
		return testenv.Row{ID: id, IntegrationType: "61", InputFields: creds(user, pass), ExpiresAt: &expired}
	}
	r4 := row(4, "sz-4@itc.com", "wrong-password-4")
	r4.AccessToken = testenv.Str("keep-4")
	b.env.Insert(t, row(1, u1, p1), row(2, u2, p2), row(3, u3, p3), r4)
	before4 := b.env.Get(t, 4)
	// Connection 3's marketplace is under maintenance at first.
	b.sandbox.SetFaults(sandbox.Faults{ShopzoneExpiresIn: 7200, ShapeBy: map[string]string{u3: sandbox.ShapeServerErrorIn200}})

	assert.Equal(t, 4, b.scanOnce(t).Enqueued)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "connection 3 to be retried", func() bool { return b.sandbox.Calls(u3) >= 2 })
	assert.Nil(t, b.env.Get(t, 3).AccessToken, "maintenance stores nothing")
	b.sandbox.SetFaults(sandbox.Faults{ShopzoneExpiresIn: 7200})
	testenv.Eventually(t, 30*time.Second, "all refreshes to finish", b.settled)

	secrets := []string{p1, p2, p3, "wrong-password-4", "keep-4"}
	for id, user := range map[int64]string{1: u1, 2: u2, 3: u3} {
		got := b.env.Get(t, id)
		require.NotNil(t, got.AccessToken, "connection %d", id)
		owner, ok := b.sandbox.IssuedTo(*got.AccessToken)
		assert.True(t, ok && owner == user, "connection %d holds its own seller's token", id)
		require.NotNil(t, got.RefreshToken, "connection %d: data.auth.refresh stored", id)
		assert.True(t, strings.HasPrefix(*got.RefreshToken, "sz-rt-"))
		require.NotNil(t, got.ExpiresAt)
		assert.WithinDuration(t, now.Add(2*time.Hour), *got.ExpiresAt, 10*time.Second,
			"connection %d expires at the answer's expiresAt", id)
		secrets = append(secrets, *got.AccessToken, *got.RefreshToken)
	}
	assert.Equal(t, 1, b.sandbox.Calls(u1))
	assert.Equal(t, 1, b.sandbox.Calls("sz-4@itc.com"), "rejected login: exactly one call")
	assert.Equal(t, before4, b.env.Get(t, 4), "a rejected login leaves the row as it was")
	archived := b.archived(t)
	require.Len(t, archived, 1)
	assert.Contains(t, archived[4].LastErr, "shopzone rejected the credentials (response.rejected[0]: error.code BAD_LOGIN, HTTP 200)")
	assertNoSecrets(t, b, secrets)
}

// TestDeclarativeUnicommercePipeline: the example file's declarative
// Unicommerce (credentials in the query string) end to end: stored, and
// neither the password nor the query in Redis or the logs.
func TestDeclarativeUnicommercePipeline(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: func(sandboxURL string) []registry.Entry {
		entries, err := registry.Parse(deploy.DeclarativeExample, "", os.Getenv)
		require.NoError(t, err)
		for i := range entries {
			entries[i].BaseURL = sandboxURL
		}
		return entries[1:] // type 43
	}})
	const odd = `p&ss=w0rd 1%+/?#`
	b.sandbox.AddSeller("duc-1@itc.com", odd)
	b.env.Insert(t, ucRow(1, "duc-1@itc.com", odd), ucRow(2, "duc-2@itc.com", "wrong-pw-2"))
	assert.Equal(t, 2, b.scanOnce(t).Enqueued)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "all refreshes to finish", b.settled)
	got := b.env.Get(t, 1)
	require.NotNil(t, got.AccessToken)
	owner, ok := b.sandbox.IssuedTo(*got.AccessToken)
	assert.True(t, ok && owner == "duc-1@itc.com")
	assert.Contains(t, b.archived(t)[2].LastErr, "unicommerce rejected the credentials (response.rejected[0]: status FAILED, HTTP 200)")
	assertNoSecrets(t, b, []string{odd, "wrong-pw-2", *got.AccessToken})
	assert.NotContains(t, b.logs.String(), "password=")
	assert.NotContains(t, b.env.RedisDump(t), "password=")
}

// TestClientCredentialsPipeline: oauth2_client_credentials end to end
// against the sandbox's /oauth/token: the client's own credentials from
// inputFields (in the body) and the entry's (HTTP Basic, secret from the
// environment) each get a new grant every refresh; a wrong secret is
// archived after one call; no secret in Redis or the logs.
func TestClientCredentialsPipeline(t *testing.T) {
	t.Setenv("E2E_CC_SECRET", "cc-entry-secret")
	b := setup(t, options{providers: providersYAML(t, `
providers:
  - integration_type: "50"
    kind: oauth2_client_credentials
    token_url: SANDBOX_URL/oauth/token
    client_auth: basic
    client_id: cc-entry
    client_secret_env: E2E_CC_SECRET
    scope: orders
    refresh_before: 10m
`)})
	b.sandbox.AddClient("cc-entry", "cc-entry-secret")
	b.sandbox.AddClient("cc-own", "cc-own-secret")
	// 5-minute tokens are due again at once under a 10-minute window, so a
	// second scan makes a second grant.
	b.sandbox.SetFaults(sandbox.Faults{OAuthExpiresIn: 300})
	b.env.Insert(t,
		testenv.Row{ID: 1, IntegrationType: "50"}, // inputFields NULL: the entry's client
		testenv.Row{ID: 2, IntegrationType: "50", InputFields: clientFields("cc-own", "cc-own-secret")},
		testenv.Row{ID: 3, IntegrationType: "50", InputFields: clientFields("cc-own", "wrong-secret-3"), AccessToken: testenv.Str("keep-3")},
	)
	before3 := b.env.Get(t, 3)
	now := time.Now().UTC().Truncate(time.Second)
	assert.Equal(t, 3, b.scanOnce(t).Enqueued)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "the refreshes to finish", b.settled)
	first := map[int64]string{}
	for id, client := range map[int64]string{1: "cc-entry", 2: "cc-own"} {
		got := b.env.Get(t, id)
		require.NotNil(t, got.AccessToken, "connection %d", id)
		owner, ok := b.sandbox.IssuedTo(*got.AccessToken)
		assert.True(t, ok && owner == client, "connection %d holds its client's token", id)
		assert.Nil(t, got.RefreshToken, "no refresh token in a client credentials grant")
		assert.WithinDuration(t, now.Add(5*time.Minute), *got.ExpiresAt, 10*time.Second)
		first[id] = *got.AccessToken
	}
	assert.Equal(t, before3, b.env.Get(t, 3), "a rejected client leaves the row as it was")
	assert.Contains(t, b.archived(t)[3].LastErr, "refused the client_credentials grant: invalid_client (HTTP 401)")

	assert.Equal(t, 2, b.scanOnce(t).Enqueued, "1 and 2 due again (3 is cooling down)")
	testenv.Eventually(t, 20*time.Second, "the second grants", func() bool {
		return b.settled() && b.env.Get(t, 1).AccessToken != nil && *b.env.Get(t, 1).AccessToken != first[1] &&
			*b.env.Get(t, 2).AccessToken != first[2]
	})
	assert.Equal(t, 5, b.sandbox.Stats().ByFlow["oauth2_client_credentials"], "two grants each for 1 and 2, one for 3")
	assertNoSecrets(t, b, []string{"cc-entry-secret", "cc-own-secret", "wrong-secret-3", "keep-3", first[1], first[2]})
}
