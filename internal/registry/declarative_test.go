package registry_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/registry"
)

// validHTTPToken is an http_token entry every refusal below breaks once.
const validHTTPToken = `
providers:
  - integration_type: "16"
    kind: ajio
  - integration_type: "77"
    kind: http_token
    name: shopzone
    base_url: https://api.shopzone.example
    token_ttl: 1h
    request:
      method: POST
      path: /v2/login
      body: json
      fields:
        login: {input: username}
        secret: {input: password}
        client: {const: eshopbox}
      headers:
        X-Api-Version: "2"
    response:
      success: {path: ok, equals: true}
      access_token: data.auth.token
      refresh_token: data.auth.refresh
      expiry: {expires_at: data.auth.expiresAt, layout: RFC3339}
      rejected:
        - {path: error.code, equals: [BAD_LOGIN, LOCKED]}
      server_failure:
        - {path: error.code, equals: [MAINTENANCE]}
`

func TestHTTPTokenValid(t *testing.T) {
	t.Parallel()
	entries, err := registry.Parse([]byte(validHTTPToken), "", os.Getenv)
	require.NoError(t, err)
	e := entries[1]
	require.NotNil(t, e.Spec)
	assert.Equal(t, "POST", e.Spec.Request.Method)
	assert.Equal(t, "data.auth.token", e.Spec.Response.AccessToken[0])
	assert.Equal(t, "shopzone", e.Marketplace)
	assert.True(t, e.IgnoresRefreshToken(), "a login that maps no refresh_token never spends one")
	spends, err := registry.Parse([]byte(strings.Replace(validHTTPToken, "client: {const: eshopbox}", "refresh: {refresh_token: true}", 1)), "", os.Getenv)
	require.NoError(t, err)
	assert.False(t, spends[1].IgnoresRefreshToken(), "a request sending the refresh token spends it")

	entries, err = registry.Parse(deploy.DeclarativeExample, "", os.Getenv)
	require.NoError(t, err, "the declarative example parses")
	assert.Len(t, entries, 2)
}

// TestHTTPTokenRefusals: one case per refusal. Each error line names the
// entry (its index, kind and integration type) and the key at fault.
func TestHTTPTokenRefusals(t *testing.T) {
	t.Parallel()
	const entry = `providers[1]: provider "http_token" (integration_type "77"): `
	for _, c := range []struct {
		name, old, new, want string
	}{
		{"unknown key in request", "      path: /v2/login", "      path: /v2/login\n      metod: GET",
			`request: unknown key "metod" (line `},
		{"unknown key in a field mapping", "{input: username}", "{imput: username}",
			`request.fields.login: unknown key "imput"`},
		{"unknown key in response", "      access_token: data.auth.token", "      access_token: data.auth.token\n      acess_token: x",
			`response: unknown key "acess_token"`},
		{"unknown key in a rule", "{path: error.code, equals: [MAINTENANCE]}", "{path: error.code, equal: [MAINTENANCE]}",
			`response.server_failure[0]: unknown key "equal"`},
		{"a path into nothing: empty segment", "access_token: data.auth.token", "access_token: data..token",
			`response.access_token[0] "data..token" is a path into nothing`},
		{"a path into nothing: through a single value", "refresh_token: data.auth.refresh", "refresh_token: ok.refresh",
			`response.refresh_token[0] "ok.refresh" is a path into nothing: response.success.path reads "ok" as a single value`},
		{"a credential mapped into the URL path", "path: /v2/login", "path: /v2/login/{password}",
			`request.path "/v2/login/{password}" holds a placeholder or a query: a credential mapped into the URL path`},
		{"a credential mapped into the URL path, colon style", "path: /v2/login", "path: /v2/login/:password",
			`a credential mapped into the URL path`},
		{"a credential mapped into the URL path, shell style", "path: /v2/login", "path: /v2/$password",
			`a credential mapped into the URL path`},
		{"a query in the URL path", "path: /v2/login", "path: /v2/login?user=x",
			`request.path "/v2/login?user=x" holds a placeholder or a query`},
		{"expiry missing", "      expiry: {expires_at: data.auth.expiresAt, layout: RFC3339}\n", "",
			"response.expiry is missing: set expires_in (a path), expires_at (a path, with layout) or token_ttl: true"},
		{"expiry contradictory", "{expires_at: data.auth.expiresAt, layout: RFC3339}", "{expires_at: data.auth.expiresAt, layout: RFC3339, expires_in: data.ttl}",
			"response.expiry is contradictory"},
		{"expires_at without layout", "{expires_at: data.auth.expiresAt, layout: RFC3339}", "{expires_at: data.auth.expiresAt}",
			"response.expiry.layout is missing"},
		{"an unknown layout", "layout: RFC3339}", "layout: iso}", `response.expiry.layout "iso" is not`},
		{"a value both rejected and a server failure", "equals: [MAINTENANCE]", "equals: [MAINTENANCE, LOCKED]",
			"response.server_failure[0] and response.rejected[0] are contradictory: error.code = LOCKED is both transient and permanent"},
		{"a rejected value that means success", "{path: error.code, equals: [BAD_LOGIN, LOCKED]}", "{path: ok, equals: [true]}",
			"response.rejected[0] contradicts response.success: ok = true means success"},
		{"a rule with two tests", "{path: error.code, equals: [BAD_LOGIN, LOCKED]}", "{path: error.code, equals: [X], absent: true}",
			"response.rejected[0] is contradictory: set only one of equals, codes or absent"},
		{"a rule without a test", "{path: error.code, equals: [BAD_LOGIN, LOCKED]}", "{path: error.code}",
			"response.rejected[0] names a path but no test"},
		{"a bad code class", "{path: error.code, equals: [MAINTENANCE]}", "{path: error.code, codes: [5x]}",
			`response.server_failure[0]: "5x" is not a status code or class`},
		{"a mapping with two sources", "{const: eshopbox}", "{const: eshopbox, input: client}",
			"request.fields.client is contradictory: set only one of input, refresh_token: true or const"},
		{"a mapping with no source", "{const: eshopbox}", "{}", "request.fields.client maps nothing"},
		{"GET with a body", "method: POST", "method: GET", "request.body json contradicts request.method GET"},
		{"a bad method", "method: POST", "method: PUT", `request.method must be GET or POST, not "PUT"`},
		{"body none with fields", "body: json", "body: none", "request.fields are set but request.body is none"},
		{"a Content-Type header against the body", "X-Api-Version: \"2\"", "Content-Type: text/plain",
			"request.headers.Content-Type contradicts request.body json"},
		{"a mapping written as a bare value", "{input: username}", "username",
			"request: line 15: cannot unmarshal !!str `username` into Value"},
		{"no access token path", "      access_token: data.auth.token\n", "", "response.access_token is missing"},
		{"no request", "    request:\n", "    requestx:\n", `unknown key requestx`},
		{"a key of another kind", "    token_ttl: 1h\n", "    token_ttl: 1h\n    token_url: https://x.example/t\n",
			"token_url does not apply to kind http_token"},
		{"refresh_before not shorter than token_ttl", "    token_ttl: 1h\n", "    token_ttl: 1h\n    refresh_before: 2h\n",
			"refresh_before (2h0m0s) must be shorter than token_ttl (1h0m0s)"},
		{"a base_url with a query", "base_url: https://api.shopzone.example", "base_url: https://api.shopzone.example?key=1",
			"base_url must not carry credentials or a query"},
		{"a name that is not a word", "name: shopzone", "name: shop zone!", "name must be a short word"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Contains(t, validHTTPToken, c.old, "the case changes the valid entry")
			_, err := registry.Parse([]byte(strings.Replace(validHTTPToken, c.old, c.new, 1)), "", os.Getenv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(err.Error(), "not a valid providers file") {
					assert.True(t, strings.HasPrefix(line, "providers[1]"), "every line names the entry: %q", line)
				}
			}
			if strings.HasPrefix(err.Error(), "providers[1]: provider") {
				assert.Contains(t, err.Error(), entry)
			}
		})
	}
}

func TestHTTPTokenPathWithAColonVerb(t *testing.T) {
	t.Parallel()
	_, err := registry.Parse([]byte(strings.Replace(validHTTPToken, "path: /v2/login", "path: /v1/token:exchange", 1)), "", os.Getenv)
	assert.NoError(t, err, "a colon inside a segment (Google-style verb) is no placeholder")
}

func TestHTTPTokenExpiryTokenTTLNeedsOne(t *testing.T) {
	t.Parallel()
	bad := strings.NewReplacer("    token_ttl: 1h\n", "", "{expires_at: data.auth.expiresAt, layout: RFC3339}", "{token_ttl: true}").Replace(validHTTPToken)
	_, err := registry.Parse([]byte(bad), "", os.Getenv)
	require.Error(t, err)
	assert.Equal(t, `providers[1]: provider "http_token" (integration_type "77"): response.expiry.token_ttl is true but the entry sets no token_ttl`, err.Error())
}

// TestHTTPTokenOneLinePerMistake: three mistakes, three lines, each naming
// the entry.
func TestHTTPTokenOneLinePerMistake(t *testing.T) {
	t.Parallel()
	bad := strings.NewReplacer("method: POST", "method: PUT", "access_token: data.auth.token", "access_token: data..token",
		"{expires_at: data.auth.expiresAt, layout: RFC3339}", "{}").Replace(validHTTPToken)
	_, err := registry.Parse([]byte(bad), "", os.Getenv)
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	assert.Len(t, lines, 3, "%s", err)
	for _, l := range lines {
		assert.True(t, strings.HasPrefix(l, `providers[1]: provider "http_token" (integration_type "77"): `), l)
	}
}

func TestClientCredentialsRefusals(t *testing.T) {
	t.Parallel()
	const valid = `
providers:
  - integration_type: "50"
    kind: oauth2_client_credentials
    token_url: https://auth.example.com/oauth/token
    client_id: app
    client_secret: s
    allow_inline_secrets: true
    client_auth: basic
    scope: orders.read
    audience: https://api.example.com
    extra_params: {resource: orders}
`
	entries, err := registry.Parse([]byte(valid), "", os.Getenv)
	require.NoError(t, err)
	assert.Equal(t, "basic", entries[0].ClientAuth)
	for _, c := range []struct{ name, old, new, want string }{
		{"client_auth neither body nor basic", "client_auth: basic", "client_auth: header", `client_auth must be body or basic, not "header"`},
		{"extra_params replacing grant_type", "{resource: orders}", "{grant_type: password}", "extra_params may not set grant_type"},
		{"basic with a JSON body", "client_auth: basic", "client_auth: basic\n    body_format: json", "client_auth basic goes with body_format form"},
		{"a base_url", "scope: orders.read", "scope: orders.read\n    base_url: https://x.example", "base_url does not apply to kind oauth2_client_credentials"},
		{"no token_url", "    token_url: https://auth.example.com/oauth/token\n", "", "token_url is missing"},
		{"scope on oauth2_refresh", "kind: oauth2_client_credentials", "kind: oauth2_refresh", "client_auth does not apply to kind oauth2_refresh"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Contains(t, valid, c.old)
			_, err := registry.Parse([]byte(strings.Replace(valid, c.old, c.new, 1)), "", os.Getenv)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "providers[0]: "), err.Error())
		})
	}
}
