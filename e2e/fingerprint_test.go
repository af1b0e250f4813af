package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

var fingerprintKey = []byte("e2e-fingerprint-key-0123456789abcdef")

// TestKeyedFingerprint: with FINGERPRINT_KEY a permanent failure records
// an h1: HMAC, not the legacy digest; the scanner keeps it cooling down
// while the credentials stay, and retries at once when they change.
func TestKeyedFingerprint(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders), fingerprintKey: fingerprintKey})
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: testenv.Str(`{}`),
		RefreshToken: testenv.Str("rt-revoked"), AccessToken: testenv.Str("keep-1"), ExpiresAt: &expired})
	b.scanOnce(t)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "the refresh to fail", b.settled)
	f := b.archived(t)[1].Failure
	require.NotNil(t, f)
	assert.True(t, strings.HasPrefix(f.Credentials, token.KeyedPrefix), "keyed: %q", f.Credentials)
	assert.NotContains(t, f.Credentials, token.Fingerprint([]byte(`{}`), "rt-revoked"), "not the guessable digest")
	assert.Equal(t, token.NewFingerprinter(fingerprintKey).Of([]byte(`{}`), "rt-revoked"), f.Credentials)

	r := b.scanOnce(t)
	assert.Equal(t, 1, r.Failing, "same refresh token: cooling down")
	b.env.IE.MustExec(`UPDATE ie_appinstall_connection SET refreshToken = ? WHERE id = 1`, sandbox.RefreshToken("fixed-1"))
	r = b.scanOnce(t)
	assert.Equal(t, 1, r.Retried, "a new refresh token is tried at once")
}

// TestLegacyFingerprintUnderAKey: failures archived before FINGERPRINT_KEY
// carry the legacy digest; a scanner with the key still compares them: the
// same credentials keep cooling down, new ones are retried at once.
func TestLegacyFingerprintUnderAKey(t *testing.T) {
	t.Parallel()
	b := setup(t, options{providers: providersYAML(t, oauthProviders)})
	expired := time.Now().UTC().Add(-time.Hour)
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: testenv.Str(`{}`),
		RefreshToken: testenv.Str("rt-revoked"), AccessToken: testenv.Str("keep-1"), ExpiresAt: &expired})
	b.scanOnce(t)
	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "the refresh to fail", b.settled)
	f := b.archived(t)[1].Failure
	require.NotNil(t, f)
	assert.Equal(t, token.Fingerprint([]byte(`{}`), "rt-revoked"), f.Credentials, "no key: the legacy digest")

	keyed, err := mysql.Open(context.Background(), b.env.WMSDSN, b.env.IEDSN, mysql.Options{FingerprintKey: fingerprintKey})
	require.NoError(t, err)
	t.Cleanup(func() { keyed.Close() })
	scanKeyed := func() scan.Result {
		res, err := scan.New(keyed, b.queue, scan.Config{Targets: registry.Targets(b.providers), Cooldown: time.Hour}, b.log, nil).
			RunOnce(context.Background())
		require.NoError(t, err)
		return res[0]
	}
	r := scanKeyed()
	assert.Equal(t, 1, r.Failing, "the legacy fingerprint still matches: cooling down")
	assert.Equal(t, 0, r.Retried)
	b.env.IE.MustExec(`UPDATE ie_appinstall_connection SET refreshToken = ? WHERE id = 1`, sandbox.RefreshToken("fixed-1"))
	r = scanKeyed()
	assert.Equal(t, 1, r.Retried, "a new refresh token is tried at once")
}
