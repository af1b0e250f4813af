package oauth2refresh_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/token"
)

const (
	clientID     = "app-42"
	clientSecret = "cs-very-secret-42"
	refreshToken = "rt-old-0123456789"
)

var conn = token.Connection{ID: 42, IntegrationType: "42", RefreshToken: refreshToken,
	InputFields: []byte(`{"client_id":"` + clientID + `","client_secret":"` + clientSecret + `"}`)}

var fixed = providertest.Now

func wantParams() map[string]string {
	return map[string]string{
		"grant_type": "refresh_token", "client_id": clientID,
		"client_secret": clientSecret, "refresh_token": refreshToken,
	}
}

// readParams reads a token request's parameters, asserting the body format.
func readParams(t *testing.T, r *http.Request, format string) map[string]string {
	t.Helper()
	got := map[string]string{}
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, "application/json", r.Header.Get("Accept"))
	_, _, basic := r.BasicAuth()
	assert.False(t, basic, "the client authenticates in the body, as the seed says")
	if format == oauth2refresh.FormatJSON {
		assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
		assert.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		return got
	}
	assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
	assert.NoError(t, r.ParseForm())
	assert.Empty(t, r.URL.RawQuery, "nothing travels in the URL")
	for k, v := range r.PostForm {
		assert.Len(t, v, 1, k)
		got[k] = v[0]
	}
	return got
}

func newProvider(t *testing.T, cfg oauth2refresh.Config) *oauth2refresh.Provider {
	t.Helper()
	if cfg.Client == nil {
		cfg.Client = provider.NewHTTPClient(2)
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixed }
	}
	p, err := oauth2refresh.New(cfg)
	require.NoError(t, err)
	return p
}

func kind(format string, rows []providertest.Case) providertest.Kind {
	return providertest.Kind{
		Name: "oauth2_refresh/" + format,
		New: func(t *testing.T, cfg providertest.Config) token.Provider {
			return newProvider(t, oauth2refresh.Config{TokenURL: cfg.BaseURL + "/oauth/token", BodyFormat: format,
				TokenTTL: cfg.TokenTTL, Timeout: cfg.Timeout})
		},
		Conn:    conn,
		Secrets: []string{clientSecret, refreshToken, "AT-", "RT-", "expired"},
		CheckRequest: func(t *testing.T, r *http.Request) {
			assert.Equal(t, "/oauth/token", r.URL.Path)
			assert.Equal(t, wantParams(), readParams(t, r, format))
		},
		Token: func(w http.ResponseWriter, padding string) {
			io.WriteString(w, `{"access_token":"AT-`+padding+`","expires_in":3600}`)
		},
		Rows: rows,
	}
}

func form(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// rows are the OAuth flow's own shapes: one or more per row of
// oauth2refresh.Verdicts.
func rows() []providertest.Case {
	const (
		P = provider.Permanent
		T = provider.Transient
		U = provider.Unusable
		S = provider.Stored
	)
	refused := "refused the refresh: "
	cases := []providertest.Case{
		{Name: "success with rotation", Handler: providertest.Answer(200, `{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"scope":"openid,profile","refresh_token":"RT-2"}`),
			Verdict: S, Token: "AT-1", Refresh: "RT-2", Lifetime: time.Hour},
		{Name: "success without rotation", Handler: providertest.Answer(200, `{"access_token":"AT-1","token_type":"Bearer","expires_in":1800}`),
			Verdict: S, Token: "AT-1", Lifetime: 30 * time.Minute},
		{Name: "form-encoded answer (GitHub style)", Handler: form(200, "access_token=AT-F&token_type=bearer&expires_in=28800&refresh_token=RT-F&scope=repo"),
			Verdict: S, Token: "AT-F", Refresh: "RT-F", Lifetime: 8 * time.Hour},
		{Name: "form-encoded answer labelled text/plain", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "access_token=AT-P&expires_in=600")
		}, Verdict: S, Token: "AT-P", Lifetime: 10 * time.Minute},
		{Name: "JSON labelled text/plain", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			io.WriteString(w, `{"access_token":"AT-J","expires_in":600}`)
		}, Verdict: S, Token: "AT-J", Lifetime: 10 * time.Minute},
		{Name: "expires_in as a string", Handler: providertest.Answer(200, `{"access_token":"AT-S","expires_in":"7200"}`),
			Verdict: S, Token: "AT-S", Lifetime: 2 * time.Hour},
		{Name: "tiny expires_in is stored as given", Handler: providertest.Answer(200, `{"access_token":"AT-S","expires_in":5}`),
			Verdict: S, Token: "AT-S", Lifetime: 5 * time.Second},
		{Name: "absurd expires_in is clamped to ten years", Handler: providertest.Answer(200, `{"access_token":"AT-A","expires_in":1e300}`),
			Verdict: S, Token: "AT-A", Lifetime: oauth2refresh.MaxLifetime},
		{Name: "expires_in of 20 years is clamped", Handler: providertest.Answer(200, `{"access_token":"AT-A","expires_in":630720000}`),
			Verdict: S, Token: "AT-A", Lifetime: oauth2refresh.MaxLifetime},
		{Name: "no expires_in: token_ttl is assumed", TokenTTL: 45 * time.Minute, Handler: providertest.Answer(200, `{"access_token":"AT-T","token_type":"Bearer"}`),
			Verdict: S, Token: "AT-T", Lifetime: 45 * time.Minute},
		{Name: "expires_in 0: token_ttl is assumed", TokenTTL: 45 * time.Minute, Handler: providertest.Answer(200, `{"access_token":"AT-T","expires_in":0}`),
			Verdict: S, Token: "AT-T", Lifetime: 45 * time.Minute},
		{Name: "expires_in null: token_ttl is assumed", TokenTTL: 45 * time.Minute, Handler: providertest.Answer(200, `{"access_token":"AT-T","expires_in":null}`),
			Verdict: S, Token: "AT-T", Lifetime: 45 * time.Minute},
		{Name: "no expires_in and no token_ttl", Handler: providertest.Answer(200, `{"access_token":"AT-X","token_type":"Bearer","refresh_token":"RT-X"}`),
			Verdict: U, Reason: "without expires_in, and the provider sets no token_ttl", Status: 200},
		{Name: "negative expires_in", Handler: providertest.Answer(200, `{"access_token":"AT-X","expires_in":-5}`),
			Verdict: U, Reason: "unusable expires_in", Status: 200},
		{Name: "expires_in NaN", Handler: providertest.Answer(200, `{"access_token":"AT-X","expires_in":"NaN"}`),
			Verdict: U, Reason: "unusable expires_in", Status: 200},
		{Name: "expires_in a word", Handler: providertest.Answer(200, `{"access_token":"AT-X","expires_in":"soon"}`),
			Verdict: U, Reason: "unusable expires_in", Status: 200},
		{Name: "no access token", Handler: providertest.Answer(200, `{"token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}`),
			Verdict: U, Reason: "answered HTTP 200 without an access token", Status: 200},
		{Name: "form without access token", Handler: form(200, "token_type=bearer&scope=repo"),
			Verdict: U, Reason: "answered HTTP 200 without an access token", Status: 200},
		{Name: "invalid_grant", Handler: oauthError(400, "invalid_grant", "refresh token "+refreshToken+" is expired"),
			Verdict: P, Reason: refused + "invalid_grant (HTTP 400)", Status: 400},
		{Name: "invalid_client under 401", Handler: oauthError(401, "invalid_client", "client "+clientSecret+" unknown"),
			Verdict: P, Reason: refused + "invalid_client (HTTP 401)", Status: 401},
		{Name: "invalid_grant in upper case under 200", Handler: oauthError(200, "INVALID_GRANT", ""),
			Verdict: P, Reason: refused + "invalid_grant (HTTP 200)", Status: 200},
		{Name: "invalid_grant under 502", Handler: oauthError(502, "invalid_grant", ""),
			Verdict: P, Reason: refused + "invalid_grant (HTTP 502)", Status: 502},
		{Name: "invalid_grant form-encoded (GitHub style)", Handler: form(200, "error=bad_verification_code&error_description=The+code+"+refreshToken),
			Verdict: P, Reason: `unrecognised error code (error "bad_verification_code") (HTTP 200)`, Status: 200},
		{Name: "temporarily_unavailable under 400", Handler: oauthError(400, "temporarily_unavailable", ""),
			Verdict: T, Reason: "is in trouble: temporarily_unavailable (HTTP 400)", Status: 400},
		{Name: "server_error under 200", Handler: oauthError(200, "server_error", ""),
			Verdict: T, Reason: "is in trouble: server_error (HTTP 200)", Status: 200},
		{Name: "503 temporarily_unavailable with Retry-After", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "11")
			oauthError(503, "temporarily_unavailable", "")(w, r)
		}, Verdict: T, Reason: "temporarily_unavailable (HTTP 503)", Status: 503, RetryAfter: 11 * time.Second},
		{Name: "429 with an unknown code and Retry-After", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			oauthError(429, "rate_limited", "")(w, r)
		}, Verdict: T, Reason: `rate limiting (HTTP 429) (error "rate_limited")`, Status: 429, RetryAfter: 7 * time.Second},
		{Name: "500 with an unknown code", Handler: oauthError(500, "internal", ""),
			Verdict: T, Reason: `answered HTTP 500 with a`, Status: 500},
		{Name: "unknown code under 400", Handler: oauthError(400, "account_locked", ""),
			Verdict: P, Reason: `unrecognised error code (error "account_locked") (HTTP 400)`, Status: 400},
		{Name: "unknown code under 200", Handler: oauthError(200, "weird_state", ""),
			Verdict: P, Reason: `unrecognised error code (error "weird_state") (HTTP 200)`, Status: 200},
		{Name: "an error code echoing the refresh token is not shown", Handler: oauthError(200, refreshToken, ""),
			Verdict: P, Reason: "unrecognised error code (HTTP 200)", Status: 200},
		{Name: "an error member beside a token", Handler: providertest.Answer(200, `{"access_token":"AT-E","expires_in":60,"error":"invalid_grant"}`),
			Verdict: P, Reason: refused + "invalid_grant (HTTP 200)", Status: 200},
		{Name: "401 without a body", Handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) },
			Verdict: P, Reason: "rejected the credentials (HTTP 401)", Status: 401},
		{Name: "400 with a JSON body of no error", Handler: providertest.Answer(400, `{"message":"no"}`),
			Verdict: P, Reason: "refused the request (HTTP 400", Status: 400},
		{Name: "token of another type", Handler: providertest.Answer(200, `{"access_token":42,"expires_in":60}`),
			Verdict: U, Reason: "(garbage)", Status: 200},
	}
	for _, code := range []string{"unauthorized_client", "unsupported_grant_type", "invalid_request", "invalid_scope", "access_denied"} {
		cases = append(cases, providertest.Case{Name: code, Handler: oauthError(400, code, ""),
			Verdict: P, Reason: refused + code + " (HTTP 400)", Status: 400})
	}
	return cases
}

// TestVerdicts runs the OAuth flow through the conformance kit and its own
// rows, with a form request body, then the kit again with a JSON one.
func TestVerdicts(t *testing.T) {
	t.Parallel()
	t.Run("form", func(t *testing.T) {
		t.Parallel()
		providertest.Run(t, kind(oauth2refresh.FormatForm, rows()))
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		providertest.Run(t, kind(oauth2refresh.FormatJSON, []providertest.Case{
			{Name: "JSON request body", Handler: providertest.Answer(200, `{"access_token":"AT-J","token_type":"Bearer","expires_in":600}`),
				Verdict: provider.Stored, Token: "AT-J", Lifetime: 10 * time.Minute},
		}))
	})
}

// TestClientCredentials: the connection's own client credentials first
// (snake or camel case), then the provider's, field by field.
func TestClientCredentials(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		fields     string
		cfgID      string
		cfgSecret  string
		wantID     string
		wantSecret string
	}{
		{name: "snake case", fields: `{"client_id":"c1","client_secret":"s1"}`, cfgID: "cfg", cfgSecret: "cfgs",
			wantID: "c1", wantSecret: "s1"},
		{name: "camel case", fields: `{"clientId":"c2","clientSecret":"s2"}`, wantID: "c2", wantSecret: "s2"},
		{name: "snake wins over camel", fields: `{"client_id":"c3","clientId":"x","client_secret":"s3","clientSecret":"y"}`,
			wantID: "c3", wantSecret: "s3"},
		{name: "provider's when inputFields has none", fields: `{"other":"x"}`, cfgID: "cfg", cfgSecret: "cfgs",
			wantID: "cfg", wantSecret: "cfgs"},
		{name: "provider's when inputFields is NULL", fields: ``, cfgID: "cfg", cfgSecret: "cfgs",
			wantID: "cfg", wantSecret: "cfgs"},
		{name: "provider's when inputFields is null", fields: `null`, cfgID: "cfg", cfgSecret: "cfgs",
			wantID: "cfg", wantSecret: "cfgs"},
		{name: "empty strings fall back", fields: `{"client_id":" ","client_secret":""}`, cfgID: "cfg", cfgSecret: "cfgs",
			wantID: "cfg", wantSecret: "cfgs"},
		{name: "field by field", fields: `{"client_id":"own"}`, cfgSecret: "cfgs", wantID: "own", wantSecret: "cfgs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			params := make(chan map[string]string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				params <- readParams(t, r, oauth2refresh.FormatForm)
				io.WriteString(w, `{"access_token":"AT","expires_in":60}`)
			}))
			defer srv.Close()
			p := newProvider(t, oauth2refresh.Config{TokenURL: srv.URL, ClientID: tt.cfgID, ClientSecret: tt.cfgSecret})
			_, err := p.Refresh(context.Background(), token.Connection{ID: 1, InputFields: []byte(tt.fields), RefreshToken: "rt"})
			require.NoError(t, err)
			got := <-params
			assert.Equal(t, tt.wantID, got["client_id"])
			assert.Equal(t, tt.wantSecret, got["client_secret"])
			assert.Equal(t, "rt", got["refresh_token"])
		})
	}
}

// TestRefreshWithoutUsableInput: what cannot succeed fails permanently,
// names the problem without quoting values, and never calls the server.
func TestRefreshWithoutUsableInput(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	p := newProvider(t, oauth2refresh.Config{TokenURL: srv.URL})
	withCfg := newProvider(t, oauth2refresh.Config{TokenURL: srv.URL, ClientID: "cfg", ClientSecret: "cfgs"})
	tests := []struct {
		name       string
		p          *oauth2refresh.Provider
		c          token.Connection
		wantReason string
	}{
		{"no refresh token", withCfg, token.Connection{InputFields: conn.InputFields},
			"no refresh token stored"},
		{"blank refresh token", withCfg, token.Connection{InputFields: conn.InputFields, RefreshToken: "  "},
			"no refresh token stored"},
		{"no client_id anywhere", p, token.Connection{InputFields: []byte(`{"client_secret":"` + clientSecret + `"}`), RefreshToken: refreshToken},
			`"client_id" is missing, and the provider configures none`},
		{"no client_secret anywhere", p, token.Connection{InputFields: []byte(`{"client_id":"` + clientID + `"}`), RefreshToken: refreshToken},
			`"client_secret" is missing, and the provider configures none`},
		{"not JSON", withCfg, token.Connection{InputFields: []byte(`{"client_secret":"` + clientSecret + `"`), RefreshToken: refreshToken},
			"malformed inputFields: not valid JSON"},
		{"an array", withCfg, token.Connection{InputFields: []byte(`["` + clientSecret + `"]`), RefreshToken: refreshToken},
			"malformed inputFields"},
		{"a number secret", withCfg, token.Connection{InputFields: []byte(`{"client_secret":12345}`), RefreshToken: refreshToken},
			`"client_secret" is not a string`},
	}
	for _, tt := range tests {
		_, err := tt.p.Refresh(context.Background(), tt.c)
		require.Error(t, err, tt.name)
		assert.True(t, token.IsPermanent(err), "%s: permanent", tt.name)
		assert.Contains(t, err.Error(), tt.wantReason, tt.name)
		for _, s := range []string{clientSecret, refreshToken, "12345", "cfgs"} {
			assert.NotContains(t, err.Error(), s, tt.name)
		}
	}
	assert.Zero(t, calls.Load(), "nothing that cannot succeed reaches the server")
}

func TestNew(t *testing.T) {
	t.Parallel()
	client := provider.NewHTTPClient(2)
	for _, u := range []string{"", "auth.example.com/oauth/token", "ftp://auth.example.com"} {
		_, err := oauth2refresh.New(oauth2refresh.Config{TokenURL: u, Client: client})
		assert.Error(t, err, u)
	}
	_, err := oauth2refresh.New(oauth2refresh.Config{TokenURL: "https://auth.example.com/t", Client: client, BodyFormat: "xml"})
	assert.Error(t, err)
	_, err = oauth2refresh.New(oauth2refresh.Config{TokenURL: "https://auth.example.com/t"})
	assert.Error(t, err, "a client is required")
}

func oauthError(status int, code, description string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
	}
}
