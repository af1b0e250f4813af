package oauth2refresh_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/token"
)

const (
	clientID     = "app-42"
	clientSecret = "cs-very-secret-42"
	refreshToken = "rt-old-0123456789"
)

var conn = token.Connection{ID: 42, IntegrationType: "42", RefreshToken: refreshToken,
	InputFields: []byte(`{"client_id":"` + clientID + `","client_secret":"` + clientSecret + `"}`)}

var fixed = time.Date(2026, 11, 23, 10, 0, 0, 700_000_000, time.UTC)

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

func TestRefresh(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		format      string
		ttl         time.Duration
		timeout     time.Duration
		handler     http.HandlerFunc
		wantToken   string
		wantRefresh string // "" = no rotation, keep the stored one
		wantExpiry  time.Duration
		permanent   bool
		wantReason  string
		wantStatus  int
		wantRetry   time.Duration
	}{
		{
			name: "success with rotation",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-1","token_type":"Bearer","expires_in":3600,"scope":"openid,profile","refresh_token":"RT-2"}`)
			},
			wantToken: "AT-1", wantRefresh: "RT-2", wantExpiry: time.Hour,
		},
		{
			name: "success without rotation",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-1","token_type":"Bearer","expires_in":1800}`)
			},
			wantToken: "AT-1", wantExpiry: 30 * time.Minute,
		},
		{
			name:   "JSON body",
			format: oauth2refresh.FormatJSON,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-J","token_type":"Bearer","expires_in":600}`)
			},
			wantToken: "AT-J", wantExpiry: 10 * time.Minute,
		},
		{
			name: "expires_in as a string",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-S","expires_in":"7200"}`)
			},
			wantToken: "AT-S", wantExpiry: 2 * time.Hour,
		},
		{
			name: "no expires_in: token_ttl is assumed",
			ttl:  45 * time.Minute,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-T","token_type":"Bearer"}`)
			},
			wantToken: "AT-T", wantExpiry: 45 * time.Minute,
		},
		{
			name: "expires_in 0: token_ttl is assumed",
			ttl:  45 * time.Minute,
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-T","expires_in":0}`)
			},
			wantToken: "AT-T", wantExpiry: 45 * time.Minute,
		},
		{
			name: "no expires_in and no token_ttl",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-X","token_type":"Bearer","refresh_token":"RT-X"}`)
			},
			wantReason: "without expires_in, and the provider sets no token_ttl", wantStatus: 200,
		},
		{
			name: "negative expires_in",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-X","expires_in":-5}`)
			},
			wantReason: "unusable expires_in", wantStatus: 200,
		},
		{
			name: "absurd expires_in",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-X","expires_in":1e300}`)
			},
			wantReason: "unusable expires_in", wantStatus: 200,
		},
		{
			name: "expires_in NaN",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-X","expires_in":"NaN"}`)
			},
			wantReason: "unusable expires_in", wantStatus: 200,
		},
		{
			name: "no access token",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"token_type":"Bearer","expires_in":3600,"refresh_token":"RT-2"}`)
			},
			wantReason: "without an access token", wantStatus: 200,
		},
		{
			name: "invalid_grant",
			handler: oauthError(http.StatusBadRequest, "invalid_grant",
				"refresh token "+refreshToken+" is expired"),
			permanent: true, wantReason: "refused the refresh: invalid_grant (HTTP 400)", wantStatus: 400,
		},
		{
			name:      "invalid_client under 401",
			handler:   oauthError(http.StatusUnauthorized, "invalid_client", "client "+clientSecret+" unknown"),
			permanent: true, wantReason: "refused the refresh: invalid_client (HTTP 401)", wantStatus: 401,
		},
		{
			name:      "unauthorized_client",
			handler:   oauthError(http.StatusBadRequest, "unauthorized_client", ""),
			permanent: true, wantReason: "unauthorized_client", wantStatus: 400,
		},
		{
			name:      "unsupported_grant_type",
			handler:   oauthError(http.StatusBadRequest, "unsupported_grant_type", ""),
			permanent: true, wantReason: "unsupported_grant_type", wantStatus: 400,
		},
		{
			name:      "invalid_request",
			handler:   oauthError(http.StatusBadRequest, "invalid_request", ""),
			permanent: true, wantReason: "invalid_request", wantStatus: 400,
		},
		{
			name:      "invalid_scope",
			handler:   oauthError(http.StatusBadRequest, "invalid_scope", ""),
			permanent: true, wantReason: "invalid_scope", wantStatus: 400,
		},
		{
			name:      "invalid_grant in upper case under 200",
			handler:   oauthError(http.StatusOK, "INVALID_GRANT", ""),
			permanent: true, wantReason: "invalid_grant (HTTP 200)", wantStatus: 200,
		},
		{
			name:       "temporarily_unavailable under 400",
			handler:    oauthError(http.StatusBadRequest, "temporarily_unavailable", ""),
			wantReason: "temporarily_unavailable (HTTP 400)", wantStatus: 400,
		},
		{
			name:       "server_error under 500",
			handler:    oauthError(http.StatusInternalServerError, "server_error", ""),
			wantReason: "answered HTTP 500 with a", wantStatus: 500,
		},
		{
			name:       "5xx trumps a permanent-looking code",
			handler:    oauthError(http.StatusBadGateway, "invalid_grant", ""),
			wantReason: "HTTP 502", wantStatus: 502,
		},
		{
			name:       "unknown code under 400",
			handler:    oauthError(http.StatusBadRequest, "account_locked", ""),
			permanent:  true,
			wantReason: `refused the request (HTTP 400) with a`, wantStatus: 400,
		},
		{
			name:       "unknown code under 200",
			handler:    oauthError(http.StatusOK, "weird_state", ""),
			wantReason: `unrecognised error code (error "weird_state") instead of a token`, wantStatus: 200,
		},
		{
			name:       "an error code echoing the refresh token is not shown",
			handler:    oauthError(http.StatusOK, refreshToken, ""),
			wantReason: "unrecognised error code instead of a token", wantStatus: 200,
		},
		{
			name: "401 without a body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
			},
			permanent: true, wantReason: "rejected the credentials (HTTP 401)", wantStatus: 401,
		},
		{
			name: "429 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"error":"rate_limited"}`)
			},
			wantReason: `rate limiting (HTTP 429) (error "rate_limited")`, wantStatus: 429, wantRetry: 7 * time.Second,
		},
		{
			name: "503 temporarily_unavailable with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "11")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":"temporarily_unavailable"}`)
			},
			wantReason: "HTTP 503", wantStatus: 503, wantRetry: 11 * time.Second,
		},
		{
			name: "HTML error page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, "<html><body>502</body></html>")
			},
			wantReason: "answered HTTP 502 with a", wantStatus: 502,
		},
		{
			name: "HTML under 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<!DOCTYPE html><html><body>sign in "+clientSecret+"</body></html>")
			},
			wantReason: "HTML body that is not a valid token response", wantStatus: 200,
		},
		{
			name: "garbage",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "{\"access_token\":AT\x00,,")
			},
			wantReason: "not a valid token response", wantStatus: 200,
		},
		{
			name: "garbage that starts like a token",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"AT-partial","expires_in":3600,`)
			},
			wantReason: "not a valid token response", wantStatus: 200,
		},
		{
			name: "body over 1 MiB",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"access_token":"`)
				io.WriteString(w, strings.Repeat("A", provider.MaxBody))
				io.WriteString(w, `","expires_in":3600}`)
			},
			wantReason: "body over 1048576 bytes", wantStatus: 200,
		},
		{
			name:    "timeout",
			timeout: 100 * time.Millisecond,
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			wantReason: "did not answer within 100ms",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			format := tt.format
			if format == "" {
				format = oauth2refresh.FormatForm
			}
			params := make(chan map[string]string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "/oauth/token", r.URL.Path)
				params <- readParams(t, r, format)
				tt.handler(w, r)
			}))
			defer srv.Close()
			p := newProvider(t, oauth2refresh.Config{TokenURL: srv.URL + "/oauth/token", BodyFormat: tt.format,
				TokenTTL: tt.ttl, Timeout: tt.timeout})

			tok, err := p.Refresh(context.Background(), conn)
			assert.Equal(t, wantParams(), <-params)
			if tt.wantToken != "" {
				require.NoError(t, err)
				assert.Equal(t, tt.wantToken, tok.AccessToken)
				assert.Equal(t, tt.wantRefresh, tok.RefreshToken, "a rotated refresh token is returned; none keeps the stored one")
				assert.Equal(t, fixed.Truncate(time.Second).Add(tt.wantExpiry), tok.ExpiresAt,
					"expiry is obtained-at (before the call, whole seconds) + expires_in")
				return
			}
			require.Error(t, err)
			var f *token.Failure
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tt.permanent, f.Permanent, "permanence: %v", err)
			assert.Contains(t, err.Error(), tt.wantReason)
			assert.Equal(t, tt.wantStatus, f.Status)
			assert.Equal(t, tt.wantRetry, f.RetryAfter)
			for _, secret := range []string{clientSecret, refreshToken, "AT-", "RT-"} {
				assert.NotContains(t, err.Error(), secret, "an error never quotes a secret, a token or a description")
			}
			assert.NotContains(t, err.Error(), "expired", "error_description is never quoted")
			assert.Less(t, len(err.Error()), 300, "an error never quotes a body")
		})
	}
}

func oauthError(status int, code, description string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
	}
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

func TestRefreshConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	p := newProvider(t, oauth2refresh.Config{TokenURL: u + "/oauth/token"})
	_, err := p.Refresh(context.Background(), conn)
	require.Error(t, err)
	assert.False(t, token.IsPermanent(err), "a network error is transient")
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error(), clientSecret)
	assert.NotContains(t, err.Error(), refreshToken)
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
