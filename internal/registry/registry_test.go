package registry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/token"
)

// specExample is the providers file of the spec.
const specExample = `
providers:
  - integration_type: "16"
    kind: ajio
    base_url: https://api-seller.services.ajio.com
    token_ttl: 30m
    refresh_before: 10m
    timeout: 10s              # per marketplace call
    rate_limit_per_second: 20 # shared by all refresher replicas
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: https://auth.example.com/oauth/token
    refresh_before: 10m
  - integration_type: "43"
    kind: unicommerce
    base_url: https://marketplace.example.com
    token_ttl: 24h
    refresh_before: 2h
`

func TestParseSpecExample(t *testing.T) {
	t.Parallel()
	entries, err := registry.Parse([]byte(specExample), "", os.Getenv)
	require.NoError(t, err)
	require.Len(t, entries, 3)

	a, o, u := entries[0], entries[1], entries[2]
	assert.Equal(t, registry.Entry{IntegrationType: "16", Kind: "ajio", BaseURL: "https://api-seller.services.ajio.com",
		TokenTTL: registry.Duration(30 * time.Minute), RefreshBefore: registry.Duration(10 * time.Minute),
		Timeout: registry.Duration(10 * time.Second), RateLimitPerSecond: 20}, a)
	assert.Equal(t, registry.Entry{IntegrationType: "42", Kind: "oauth2_refresh", TokenURL: "https://auth.example.com/oauth/token",
		RefreshBefore: registry.Duration(10 * time.Minute), Timeout: registry.Duration(10 * time.Second), BodyFormat: "form"}, o,
		"oauth2_refresh: form body, no assumed lifetime by default")
	assert.Equal(t, registry.Entry{IntegrationType: "43", Kind: "unicommerce", BaseURL: "https://marketplace.example.com",
		TokenTTL: registry.Duration(24 * time.Hour), RefreshBefore: registry.Duration(2 * time.Hour),
		Timeout: registry.Duration(10 * time.Second)}, u)

	// The kinds whose answers carry no lifetime fix it at token_ttl; the
	// scan and the refresh know then that it never moves the refresh point.
	assert.Equal(t, []token.Target{
		{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute, Lifetime: 30 * time.Minute},
		{IntegrationType: "42", Kind: "oauth2_refresh", RefreshBefore: 10 * time.Minute},
		{IntegrationType: "43", Kind: "unicommerce", RefreshBefore: 2 * time.Hour, Lifetime: 24 * time.Hour},
	}, registry.Targets(entries))
	assert.True(t, a.IgnoresRefreshToken(), "ajio logs in with inputFields")
	assert.False(t, o.IgnoresRefreshToken(), "oauth2_refresh spends the refresh token")
	assert.True(t, u.IgnoresRefreshToken(), "unicommerce logs in with inputFields")
}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	entries, err := registry.Parse([]byte(`
providers:
  - {integration_type: "16", kind: ajio}
  - {integration_type: "17", kind: ajio, base_url: "https://own.example.com"}
  - {integration_type: 42, kind: oauth2_refresh, token_url: "https://auth.example.com/t", body_format: json, client_id: app, client_secret: s, allow_inline_secrets: true}
  - {integration_type: "43", kind: unicommerce, base_url: "https://uc.example.com"}
`), "https://ajio.override.example.com", os.Getenv)
	require.NoError(t, err)
	assert.Equal(t, "https://ajio.override.example.com", entries[0].BaseURL, "AJIO_BASE_URL fills an ajio entry that names none")
	assert.Equal(t, 30*time.Minute, entries[0].TTL())
	assert.Equal(t, 10*time.Minute, entries[0].Before())
	assert.Equal(t, "https://own.example.com", entries[1].BaseURL, "an entry's own base_url wins")
	assert.Equal(t, "42", entries[2].IntegrationType, "an unquoted number is read as text")
	assert.Equal(t, "json", entries[2].BodyFormat)
	assert.Equal(t, 10*time.Minute, entries[2].Before())
	assert.Zero(t, entries[2].TTL())
	assert.Equal(t, 24*time.Hour, entries[3].TTL())
	assert.Equal(t, 2*time.Hour, entries[3].Before())

	d := registry.Defaults("")
	require.Len(t, d, 1)
	assert.Equal(t, "16", d[0].IntegrationType)
	assert.Equal(t, registry.KindAjio, d[0].Kind)
	assert.Equal(t, ajio.DefaultBaseURL, d[0].BaseURL)
}

func TestParseRejects(t *testing.T) {
	t.Setenv("REGISTRY_TEST_UNSET_SECRET", "") // no t.Parallel with Setenv
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"not YAML", "providers: [", "not a valid providers file"},
		{"empty file", "", "not a valid providers file: it is empty"},
		{"no providers", "providers: []", "lists no providers"},
		{"unknown top-level key", "provider:\n  - {integration_type: '16', kind: ajio}", "line 1: unknown key provider"},
		{"unknown entry key", "providers:\n  - {integration_type: '16', kind: ajio, token_tll: 30m}", "line 2: unknown key token_tll"},
		{"bad duration", "providers:\n  - {integration_type: '16', kind: ajio, token_ttl: soon}",
			`line 2: "soon" is not a duration`},
		{"duration without a unit", "providers:\n  - {integration_type: '16', kind: ajio, refresh_before: 10}",
			`"10" is not a duration`},
		{"missing integration type", "providers:\n  - {kind: ajio}", "providers[0]: integration_type is missing"},
		{"missing kind", "providers:\n  - {integration_type: '16'}", `integration_type "16": kind is missing`},
		{"unknown kind", "providers:\n  - {integration_type: '16', kind: amazon}", `unknown kind "amazon" (ajio, oauth2_refresh, unicommerce`},
		{"unicommerce without base_url", "providers:\n  - {integration_type: '43', kind: unicommerce}", "base_url is missing"},
		{"oauth2 without token_url", "providers:\n  - {integration_type: '42', kind: oauth2_refresh}", "token_url is missing"},
		{"relative URL", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: uc.example.com}",
			"base_url is not an absolute http(s) URL"},
		{"URL of another scheme", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'ftp://a.example/t'}",
			"token_url is not an absolute http(s) URL"},
		{"URL with credentials", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'https://u:p@uc.example.com'}",
			"must not carry credentials or a query"},
		{"URL with a query", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'https://uc.example.com/?password=x'}",
			"must not carry credentials or a query"},
		{"refresh_before equal to token_ttl", "providers:\n  - {integration_type: '16', kind: ajio, token_ttl: 30m, refresh_before: 30m}",
			"refresh_before (30m0s) must be shorter than token_ttl (30m0s)"},
		{"refresh_before over the default lifetime", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'https://uc.example.com', refresh_before: 25h}",
			"refresh_before (25h0m0s) must be shorter than token_ttl (24h0m0s)"},
		{"oauth2 refresh_before over token_ttl", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', token_ttl: 5m}",
			"refresh_before (10m0s) must be shorter than token_ttl (5m0s)"},
		{"negative token_ttl", "providers:\n  - {integration_type: '16', kind: ajio, token_ttl: -1h}", "token_ttl must be positive"},
		{"negative refresh_before", "providers:\n  - {integration_type: '16', kind: ajio, refresh_before: -1m}", "refresh_before must be positive"},
		{"negative timeout", "providers:\n  - {integration_type: '16', kind: ajio, timeout: -1s}", "timeout must be positive"},
		{"negative rate limit", "providers:\n  - {integration_type: '16', kind: ajio, rate_limit_per_second: -1}", "rate_limit_per_second must not be negative"},
		{"bad body_format", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', body_format: xml}",
			`body_format must be form or json, not "xml"`},
		{"client_secret and client_secret_env", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', client_secret: s, client_secret_env: X}",
			"set client_secret or client_secret_env, not both"},
		{"client_secret_env not set", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', client_secret_env: REGISTRY_TEST_UNSET_SECRET}",
			"client_secret_env names REGISTRY_TEST_UNSET_SECRET, which is not set"},
		{"token_url on unicommerce", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'https://uc.example.com', token_url: 'https://uc.example.com/t'}",
			"token_url does not apply to kind unicommerce"},
		{"client_secret on ajio", "providers:\n  - {integration_type: '16', kind: ajio, client_secret: s}",
			"client_secret does not apply to kind ajio"},
		{"body_format on unicommerce", "providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'https://uc.example.com', body_format: json}",
			"body_format does not apply to kind unicommerce"},
		{"base_url on oauth2", "providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', base_url: 'https://a.example'}",
			"base_url does not apply to kind oauth2_refresh"},
		{"duplicate integration type", "providers:\n  - {integration_type: '16', kind: ajio}\n  - {integration_type: '16', kind: unicommerce, base_url: 'https://uc.example.com'}",
			`providers[1]: integration_type "16" is listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registry.Parse([]byte(tt.yaml), "", os.Getenv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

// An error about an entry names it by place and integration type, and an
// unknown key comes with the nearest known one when it looks like a typo.
func TestParseNamesTheEntryAndSuggestsAKey(t *testing.T) {
	t.Parallel()
	const two = "providers:\n  - {integration_type: '16', kind: ajio}\n  - integration_type: '42'\n    kind: oauth2_refresh\n    token_url: 'https://a.example/t'\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"typo in the second entry", two + "    token_tll: 1h\n",
			`providers[1] (integration_type "42"): line 6: unknown key token_tll (did you mean token_ttl?)`},
		{"swapped letters", two + "    refersh_before: 5m\n",
			`providers[1] (integration_type "42"): line 6: unknown key refersh_before (did you mean refresh_before?)`},
		{"wrong case", two + "    Client_ID: x\n", "unknown key Client_ID (did you mean client_id?)"},
		{"bad value", two + "    timeout: soon\n", `providers[1] (integration_type "42"): line 6: "soon" is not a duration`},
		{"entry without a type", "providers:\n  - {kind: ajio, tokn_ttl: 1h}", "providers[0]: line 2: unknown key tokn_ttl (did you mean token_ttl?)"},
		{"top-level typo", "provider:\n  - {integration_type: '16', kind: ajio}", "line 1: unknown key provider (did you mean providers?)"},
		{"not a list", "providers: ajio", "line 1: providers must be a list"},
		{"providers twice", "providers: []\nproviders: []", "line 2: providers is given twice"},
		{"not a number", two + "    rate_limit_per_second: fast\n", `providers[1] (integration_type "42"): line 6: ` + "`fast` is not a number"},
		{"a list for a value", two + "    client_id: [a, b]\n", `providers[1] (integration_type "42"): line 6: a list is not a single value`},
		{"an entry that is not a mapping", "providers:\n  - ajio", "providers[0]: line 2: an entry must be a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.Parse([]byte(tc.yaml), "", os.Getenv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// A key far from every known one gets no guess.
	_, err := registry.Parse([]byte(two+"    colour: blue\n"), "", os.Getenv)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown key colour")
	assert.NotContains(t, err.Error(), "did you mean")
}

func TestBuild(t *testing.T) {
	t.Setenv("REGISTRY_TEST_CLIENT_SECRET", "from-the-environment")
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.PostForm.Get("client_secret"))
		switch {
		case r.URL.Path == "/oauth/token":
			io.WriteString(w, `{"access_token":"AT","expires_in":60}`)
		case r.Method == http.MethodGet:
			io.WriteString(w, `{"status":"SUCCESS","accessToken":"AT"}`)
		default:
			io.WriteString(w, `{"success":true,"statusCode":0,"result":{"accessToken":"AT"}}`)
		}
	}))
	defer srv.Close()
	entries, err := registry.Parse([]byte(strings.ReplaceAll(`
providers:
  - {integration_type: "16", kind: ajio, base_url: "URL"}
  - {integration_type: "42", kind: oauth2_refresh, token_url: "URL/oauth/token", client_id: app, client_secret: "in-the-file", allow_inline_secrets: true}
  - {integration_type: "44", kind: oauth2_refresh, token_url: "URL/oauth/token", client_id: app, client_secret_env: REGISTRY_TEST_CLIENT_SECRET}
  - {integration_type: "43", kind: unicommerce, base_url: "URL"}
`, "URL", srv.URL)), "", os.Getenv)
	require.NoError(t, err)

	client := provider.NewHTTPClient(2)
	wantTypes := []any{&ajio.Provider{}, &oauth2refresh.Provider{}, &oauth2refresh.Provider{}, &unicommerce.Provider{}}
	for i, e := range entries {
		p, err := registry.Build(e, client, os.Getenv)
		require.NoError(t, err, e.Label())
		assert.IsType(t, wantTypes[i], p, e.Label())
		c := token.Connection{ID: 1, InputFields: []byte(`{"username":"u","password":"p"}`), RefreshToken: "rt"}
		_, err = p.Refresh(context.Background(), c)
		assert.NoError(t, err, e.Label())
	}
	assert.Equal(t, []string{
		"POST /authToken ",
		"POST /oauth/token in-the-file",
		"POST /oauth/token from-the-environment",
		"GET /authToken ",
	}, got, "each kind calls its own flow; client_secret_env is read from the environment")

	_, err = registry.Build(registry.Entry{IntegrationType: "9", Kind: "amazon"}, client, os.Getenv)
	assert.Error(t, err)
}

// TestInsecureHTTP: an http:// base_url or token_url is refused to a host
// that is not loopback, naming allow_insecure_http, which allows it; an
// ajio entry filled from AJIO_BASE_URL takes the caller's check.
func TestInsecureHTTP(t *testing.T) {
	t.Parallel()
	for _, y := range []string{
		"providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'http://uc.example.com'}",
		"providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'http://10.0.0.7/oauth/token'}",
		"providers:\n  - {integration_type: '16', kind: ajio, base_url: 'http://sandbox:8089'}",
		"providers:\n  - {integration_type: '44', kind: oauth2_client_credentials, token_url: 'http://auth.example.com/t', client_id: c, client_secret_env: HOME}",
	} {
		_, err := registry.Parse([]byte(y), "", os.Getenv)
		require.Error(t, err, y)
		assert.Contains(t, err.Error(), "is http:// to a host that is not loopback", y)
		assert.Contains(t, err.Error(), "set allow_insecure_http: true on the entry", y)
		assert.NotContains(t, err.Error(), "\n")

		allowed := strings.Replace(y, "}", ", allow_insecure_http: true}", 1)
		entries, err := registry.Parse([]byte(allowed), "", os.Getenv)
		require.NoError(t, err, allowed)
		assert.True(t, entries[0].AllowInsecureHTTP)
		_, err = registry.Build(entries[0], http.DefaultClient, os.Getenv)
		require.NoError(t, err, "the client takes the entry's allowance")
		// The clients check too, should an entry reach them unvalidated.
		entries[0].AllowInsecureHTTP = false
		_, err = registry.Build(entries[0], http.DefaultClient, os.Getenv)
		require.Error(t, err, y)
		assert.Contains(t, err.Error(), httpurl.ErrInsecureHTTP.Error(), y)
	}
	for _, y := range []string{
		"providers:\n  - {integration_type: '43', kind: unicommerce, base_url: 'http://127.0.0.1:8089'}",
		"providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'http://localhost:8089/oauth/token'}",
		"providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'http://[::1]:8089/oauth/token'}",
	} {
		_, err := registry.Parse([]byte(y), "", os.Getenv)
		require.NoError(t, err, "loopback: %s", y)
	}
	entries, err := registry.Parse([]byte("providers:\n  - {integration_type: '16', kind: ajio}"), "http://sandbox:8089", os.Getenv)
	require.NoError(t, err, "AJIO_BASE_URL is config's to check")
	assert.Equal(t, "http://sandbox:8089", entries[0].BaseURL)
	_, err = registry.Build(entries[0], http.DefaultClient, os.Getenv)
	require.NoError(t, err)
	_, err = registry.Build(registry.Defaults("http://sandbox:8089")[0], http.DefaultClient, os.Getenv)
	require.NoError(t, err, "AJIO_BASE_URL without a providers file")
}

// TestInlineSecrets: a client_secret written in the file is refused unless
// the entry allows it, naming client_secret_env; secret-looking static
// headers and constants of an http_token entry are a warning that names
// them, never their value.
func TestInlineSecrets(t *testing.T) {
	t.Parallel()
	for _, y := range []string{
		"providers:\n  - {integration_type: '42', kind: oauth2_refresh, token_url: 'https://a.example/t', client_id: c, client_secret: hunter2}",
		"providers:\n  - {integration_type: '50', kind: oauth2_client_credentials, token_url: 'https://a.example/t', client_id: c, client_secret: hunter2}",
	} {
		_, err := registry.Parse([]byte(y), "", os.Getenv)
		require.Error(t, err, y)
		assert.Contains(t, err.Error(), "client_secret is written in the providers file")
		assert.Contains(t, err.Error(), "client_secret_env")
		assert.Contains(t, err.Error(), "allow_inline_secrets: true")
		assert.NotContains(t, err.Error(), "hunter2")
		assert.NotContains(t, err.Error(), "\n")

		entries, err := registry.Parse([]byte(strings.Replace(y, "}", ", allow_inline_secrets: true}", 1)), "", os.Getenv)
		require.NoError(t, err)
		assert.Empty(t, registry.InlineSecrets(entries))
	}

	const declared = `
providers:
  - integration_type: "61"
    kind: http_token
    base_url: https://shop.example.com
    request:
      method: POST
      path: /login
      body: json
      fields:
        user: {input: username}
        pass: {input: password}
        api_secret: {const: hunter2}
        client: {const: eshopbox}
      headers:
        X-Api-Version: "2"
        X-Api-Key: hunter3
    response:
      access_token: token
      expiry: {expires_in: expires_in}
`
	entries, err := registry.Parse([]byte(declared), "", os.Getenv)
	require.NoError(t, err, "a warning, not a refusal")
	w := registry.InlineSecrets(entries)
	require.Len(t, w, 1)
	assert.Contains(t, w[0], `integration_type "61"`)
	assert.Contains(t, w[0], "request.headers.X-Api-Key")
	assert.Contains(t, w[0], "request.fields.api_secret")
	assert.NotContains(t, w[0], "X-Api-Version")
	assert.NotContains(t, w[0], "request.fields.client")
	assert.NotContains(t, w[0], "hunter")

	entries, err = registry.Parse([]byte(strings.Replace(declared, "    base_url:", "    allow_inline_secrets: true\n    base_url:", 1)), "", os.Getenv)
	require.NoError(t, err)
	assert.Empty(t, registry.InlineSecrets(entries))
}
