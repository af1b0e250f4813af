package httptoken_test

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

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/token"
)

const password = "Sz p@ss&w=1"

var conn = token.Connection{ID: 61, IntegrationType: "61",
	InputFields: []byte(`{"username":"seller@sz.test","password":"` + password + `"}`)}

func shopzoneFile(extra string) []byte {
	return []byte("providers:\n" + strings.ReplaceAll(sandbox.ShopzoneEntry, "BASE_URL", "https://x.example") + extra)
}

func auth(expiresAt string) string {
	return `{"ok":true,"data":{"auth":{"token":"AT-1","refresh":"RT-1","expiresAt":"` + expiresAt + `"}}}`
}

// TestShopzoneVerdicts runs the sandbox's declarative-only marketplace
// (token under data.auth.token, an absolute RFC 3339 expiry, a form body
// with a constant and a static header) through the conformance kit.
func TestShopzoneVerdicts(t *testing.T) {
	t.Parallel()
	const P, T, U = provider.Permanent, provider.Transient, provider.Unusable
	in := func(d time.Duration) string { return providertest.Now.Add(d).UTC().Format(time.RFC3339) }
	providertest.Run(t, providertest.Kind{
		Name:    "shopzone",
		New:     providertest.Declarative(t, shopzoneFile(""), "61"),
		Conn:    conn,
		Secrets: []string{password, "Sz+p%40ss", "Sz%20p%40ss"},
		CheckRequest: func(t *testing.T, r *http.Request) {
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, sandbox.ShopzonePath, r.URL.Path)
			assert.Equal(t, "2", r.Header.Get("X-Api-Version"))
			assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
			require.NoError(t, r.ParseForm())
			assert.Equal(t, "seller@sz.test", r.PostForm.Get("login"))
			assert.Equal(t, password, r.PostForm.Get("secret"))
			assert.Equal(t, "eshopbox", r.PostForm.Get("client"))
		},
		Token: func(w http.ResponseWriter, padding string) {
			io.WriteString(w, `{"ok":true,"data":{"auth":{"token":"AT-`+padding+`","expiresAt":"2030-01-01T00:00:00Z"}}}`)
		},
		Rows: []providertest.Case{
			// Obtained-at is Now truncated (10:00:00); the expiry is read
			// as written, whole seconds.
			{Name: "token with an absolute expiry", Handler: providertest.Answer(200, auth(in(time.Hour))),
				Verdict: provider.Stored, Token: "AT-1", Refresh: "RT-1", Lifetime: time.Hour},
			{Name: "expiry in another zone", Handler: providertest.Answer(200, auth(providertest.Now.Add(2*time.Hour).In(time.FixedZone("IST", 19800)).Format(time.RFC3339))),
				Verdict: provider.Stored, Token: "AT-1", Refresh: "RT-1", Lifetime: 2 * time.Hour},
			{Name: "expiry over ten years: clamped", Handler: providertest.Answer(200, auth("2999-01-01T00:00:00Z")),
				Verdict: provider.Stored, Token: "AT-1", Refresh: "RT-1", Lifetime: httptoken.MaxLifetime},
			{Name: "expiry already past", Handler: providertest.Answer(200, auth(in(-time.Minute))),
				Verdict: U, Reason: "data.auth.expiresAt that is already past", Status: 200},
			{Name: "expiry not in the layout", Handler: providertest.Answer(200, auth("tomorrow")),
				Verdict: U, Reason: "not a time in layout RFC3339", Status: 200},
			{Name: "no expiry", Handler: providertest.Answer(200, `{"ok":true,"data":{"auth":{"token":"AT-1"}}}`),
				Verdict: U, Reason: "a token without data.auth.expiresAt", Status: 200},
			{Name: "rejected login under 200", Handler: providertest.Answer(200, `{"ok":false,"error":{"code":"BAD_LOGIN","message":"`+password+`"}}`),
				Verdict: P, Reason: "shopzone rejected the credentials (response.rejected[0]: error.code BAD_LOGIN, HTTP 200)", Status: 200},
			{Name: "locked account in another case under 403", Handler: providertest.Answer(403, `{"ok":false,"error":{"code":"account_locked"}}`),
				Verdict: P, Reason: "error.code ACCOUNT_LOCKED", Status: 403},
			{Name: "maintenance under 200 with Retry-After", Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "40")
				providertest.Answer(200, `{"ok":false,"error":{"code":"MAINTENANCE"}}`)(w, r)
			}, Verdict: T, Reason: "shopzone failed on its side (response.server_failure[0]: error.code MAINTENANCE, HTTP 200)",
				Status: 200, RetryAfter: 40 * time.Second},
			{Name: "an unknown error code under 200", Handler: providertest.Answer(200, `{"ok":false,"error":{"code":"`+password+`"}}`),
				Verdict: U, Reason: "(JSON) that is not a token response", Status: 200},
			{Name: "ok without a token", Handler: providertest.Answer(200, `{"ok":true,"data":{}}`),
				Verdict: U, Reason: "success without an access token", Status: 200},
			{Name: "token not a string", Handler: providertest.Answer(200, `{"ok":true,"data":{"auth":{"token":12,"expiresAt":"2030-01-01T00:00:00Z"}}}`),
				Verdict: U, Reason: "success without an access token", Status: 200},
			{Name: "ok as a string", Handler: providertest.Answer(200, `{"ok":"true","data":{"auth":{"token":"AT","expiresAt":"2030-01-01T00:00:00Z"}}}`),
				Verdict: U, Reason: "not a token response", Status: 200},
			{Name: "HTTP 400 unknown error", Handler: providertest.Answer(400, `{"ok":false,"error":{"code":"BAD_REQUEST"}}`),
				Verdict: P, Reason: "refused the request (HTTP 400", Status: 400},
			{Name: "HTTP 503 with a token", Handler: providertest.Answer(503, auth(in(time.Hour))),
				Verdict: T, Reason: "answered HTTP 503", Status: 503},
		},
	})
}

// TestExpiresInAndRefreshTokenMapping: seconds-to-live (number or string,
// token_ttl when absent), a GET with the refresh token in the query (the
// URL is a secret), and codes rules.
func TestExpiresInAndRefreshTokenMapping(t *testing.T) {
	t.Parallel()
	const rt = "rt-Secret-123"
	file := []byte(`
providers:
  - integration_type: "70"
    kind: http_token
    base_url: https://x.example
    token_ttl: 20m
    refresh_before: 5m
    request:
      method: GET
      path: /token
      body: none
      query:
        grant: {const: refresh}
        rt: {refresh_token: true}
    response:
      access_token: token
      refresh_token: next
      expiry: {expires_in: ttl}
      server_failure:
        - {path: code, codes: [5xx]}
      rejected:
        - {path: code, codes: [4xx]}
`)
	newP := providertest.Declarative(t, file, "70")
	var lastQuery string
	for _, c := range []struct {
		body    string
		verdict provider.Verdict
		life    time.Duration
	}{
		{`{"token":"A","ttl":600,"next":"N"}`, provider.Stored, 10 * time.Minute},
		{`{"token":"A","ttl":"900"}`, provider.Stored, 15 * time.Minute},
		{`{"token":"A"}`, provider.Stored, 20 * time.Minute},
		{`{"token":"A","ttl":-1}`, provider.Unusable, 0},
		{`{"token":"A","ttl":"soon"}`, provider.Unusable, 0},
		{`{"code":"503"}`, provider.Transient, 0},
		{`{"code":401}`, provider.Permanent, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			lastQuery = r.URL.RawQuery
			providertest.Answer(200, c.body)(w, r)
		}))
		p := newP(t, providertest.Config{BaseURL: srv.URL})
		tok, err := p.Refresh(context.Background(), token.Connection{ID: 1, RefreshToken: rt})
		srv.Close()
		assert.Equal(t, c.verdict.String(), providertest.VerdictOf(err).String(), "%s: %v", c.body, err)
		assert.Equal(t, "grant=refresh&rt="+rt, lastQuery)
		if c.verdict == provider.Stored {
			assert.Equal(t, providertest.Now.Truncate(time.Second).Add(c.life), tok.ExpiresAt, c.body)
		}
		if err != nil {
			assert.NotContains(t, err.Error(), rt)
			assert.NotContains(t, err.Error(), "?")
		}
	}
	p := newP(t, providertest.Config{BaseURL: "http://127.0.0.1:1"})
	_, err := p.Refresh(context.Background(), token.Connection{ID: 1})
	assert.True(t, token.IsPermanent(err), "no refresh token: permanent without a call: %v", err)
}

// TestAgainstSandbox: the Shopzone entry against the sandbox marketplace.
func TestAgainstSandbox(t *testing.T) {
	t.Parallel()
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	defer srv.Close()
	entries, err := registry.Parse([]byte("providers:\n"+strings.ReplaceAll(sandbox.ShopzoneEntry, "BASE_URL", srv.URL)), "", os.Getenv)
	require.NoError(t, err)
	p, err := registry.Build(entries[0], provider.NewHTTPClient(2), os.Getenv)
	require.NoError(t, err)
	user := "sz1@sandbox.test"
	start := time.Now().Truncate(time.Second)
	tok, err := p.Refresh(context.Background(), token.Connection{ID: 1, InputFields: []byte(`{"username":"` + user + `","password":"` + sandbox.Password(user) + `"}`)})
	require.NoError(t, err)
	owner, ok := sb.IssuedTo(tok.AccessToken)
	assert.True(t, ok && owner == user, "the sandbox issued the stored token")
	assert.NotEmpty(t, tok.RefreshToken)
	assert.WithinDuration(t, start.Add(time.Hour), tok.ExpiresAt, 5*time.Second)

	_, err = p.Refresh(context.Background(), token.Connection{ID: 2, InputFields: []byte(`{"username":"` + user + `","password":"wrong"}`)})
	assert.True(t, token.IsPermanent(err))
	assert.Contains(t, err.Error(), "BAD_LOGIN")

	sb.SetFaults(sandbox.Faults{Shape: sandbox.ShapeServerErrorIn200})
	_, err = p.Refresh(context.Background(), token.Connection{ID: 1, InputFields: []byte(`{"username":"` + user + `","password":"` + sandbox.Password(user) + `"}`)})
	require.Error(t, err)
	assert.False(t, token.IsPermanent(err), "MAINTENANCE is transient: %v", err)
	assert.Contains(t, err.Error(), "MAINTENANCE")
}
