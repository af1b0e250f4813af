package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestTry: --try calls the marketplace once for one connection, prints the
// verdict and writes nothing: the row is unchanged, no task is enqueued,
// and neither a token nor a password is printed. A flow that would spend a
// stored refresh token is not tried without --spend-refresh-token.
func TestTry(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	file := filepath.Join(t.TempDir(), "providers.yaml")
	require.NoError(t, os.WriteFile(file, []byte("providers:\n"+strings.ReplaceAll(sandbox.ShopzoneEntry, "BASE_URL", srv.URL)+`
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: `+srv.URL+`/oauth/token
    client_id: `+sandbox.DefaultClientID+`
    client_secret_env: SANDBOX_CLIENT_SECRET
`), 0o600))
	user := "try-1@sandbox.test"
	pass := sandbox.Password(user)
	expired := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	env.Insert(t,
		testenv.Row{ID: 1, IntegrationType: "61", InputFields: testenv.Str(`{"username":"` + user + `","password":"` + pass + `"}`),
			AccessToken: testenv.Str("old-at-1"), ExpiresAt: &expired},
		testenv.Row{ID: 2, IntegrationType: "61", InputFields: testenv.Str(`{"username":"` + user + `","password":"wrong-pw-2"}`)},
		testenv.Row{ID: 3, IntegrationType: "42", InputFields: testenv.Str(`{}`), RefreshToken: testenv.Str(sandbox.RefreshToken("o3"))},
		testenv.Row{ID: 4, IntegrationType: "99", InputFields: testenv.Str(`{}`)},
	)
	before := map[int64]testenv.Stored{1: env.Get(t, 1), 2: env.Get(t, 2), 3: env.Get(t, 3)}
	vars := map[string]string{"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL,
		"PROVIDERS_FILE": file, "REFRESH_QUEUE": env.Queue, "SANDBOX_CLIENT_SECRET": sandbox.DefaultClientSecret}
	var all strings.Builder
	tryOnce := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(context.Background(), args, func(k string) string { return vars[k] }, &out, &out)
		all.WriteString(out.String())
		return code, out.String()
	}

	code, out := tryOnce("--try", "1")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "connection 1 (http_token, integration type 61): stored: a token expiring ")
	assert.Contains(t, out, "with a refresh token; nothing was written")
	assert.Equal(t, 1, sb.Calls(user), "one call")

	code, out = tryOnce("--try", "2")
	assert.Equal(t, 1, code, out)
	assert.Contains(t, out, "connection 2 (http_token, integration type 61): permanent: shopzone rejected the credentials")

	code, out = tryOnce("--try", "3")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "not tried: the call sends the stored refresh token")
	assert.Zero(t, sb.Calls("o3"), "a refresh token is not spent without --spend-refresh-token")
	code, out = tryOnce("--try", "3", "--spend-refresh-token")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "(oauth2_refresh, integration type 42): stored")

	code, out = tryOnce("--try", "4")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "no active channel of a configured integration type (its types: 99)")

	for id, row := range before {
		assert.Equal(t, row, env.Get(t, id), "connection %d: --try writes nothing", id)
	}
	assert.NotContains(t, env.RedisDump(t), env.Queue, "--try enqueues nothing")
	for _, s := range []string{pass, "wrong-pw-2", sandbox.DefaultClientSecret, "sz-at-", "oauth-at-", sandbox.RefreshToken("o3")} {
		assert.NotContains(t, all.String(), s, "--try never prints a secret or a token")
	}
}
