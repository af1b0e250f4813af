package unicommerce_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
	"github.com/eshopbox/token-refresher/internal/token"
)

// The password has characters that query encoding changes, so a leak in
// either form is caught.
const (
	username = "seller@uc.test"
	password = "Pa55 w/rd&x=1%zz+"
)

var conn = token.Connection{ID: 43, IntegrationType: "43",
	InputFields: []byte(`{"username":"` + username + `","password":"` + password + `"}`)}

// leaks lists every form in which the credentials could show up in a text.
func leaks() []string {
	q := url.Values{"username": {username}, "password": {password}}.Encode()
	return []string{password, url.QueryEscape(password), url.PathEscape(password), q, "password=", "Pa55"}
}

func assertNoCredentials(t *testing.T, text string) {
	t.Helper()
	for _, l := range leaks() {
		assert.NotContains(t, text, l, "the text quotes the credentials")
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	fixed := time.Date(2026, 11, 23, 10, 0, 0, 700_000_000, time.UTC)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		timeout    time.Duration
		ttl        time.Duration
		wantToken  string
		wantExpiry time.Duration
		permanent  bool
		wantReason string
		wantStatus int
		wantRetry  time.Duration
	}{
		{
			name: "success",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"SUCCESS","accessToken":"as23djaexnsnJsnJSW34snapl"}`)
			},
			wantToken: "as23djaexnsnJsnJSW34snapl", wantExpiry: 24 * time.Hour,
		},
		{
			name: "success with a configured lifetime",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"SUCCESS","accessToken":"AT-48"}`)
			},
			ttl:       48 * time.Hour,
			wantToken: "AT-48", wantExpiry: 48 * time.Hour,
		},
		{
			name: "lowercase success",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"success","accessToken":"AT-lc"}`)
			},
			wantToken: "AT-lc", wantExpiry: 24 * time.Hour,
		},
		{
			name: "FAILED is rejected credentials",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"FAILED","message":"bad password `+password+`"}`)
			},
			permanent: true, wantReason: "unicommerce rejected the credentials (status FAILED)", wantStatus: 200,
		},
		{
			name: "FAILED under 401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"status":"FAILED"}`)
			},
			permanent: true, wantReason: "unicommerce rejected the credentials (HTTP 401)", wantStatus: 401,
		},
		{
			name: "SUCCESS without a token",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"SUCCESS","accessToken":" "}`)
			},
			wantReason: "SUCCESS without an access token", wantStatus: 200,
		},
		{
			name: "unrecognised status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"`+password+`"}`)
			},
			wantReason: "unrecognised status", wantStatus: 200,
		},
		{
			name: "no status",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"accessToken":"AT"}`)
			},
			wantReason: "not a valid token response", wantStatus: 200,
		},
		{
			name: "5xx",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `{"status":"FAILED","message":"`+r.URL.String()+`"}`)
			},
			wantReason: "unicommerce answered HTTP 500", wantStatus: 500,
		},
		{
			name: "429 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "9")
				w.WriteHeader(http.StatusTooManyRequests)
			},
			wantReason: "rate limiting (HTTP 429)", wantStatus: 429, wantRetry: 9 * time.Second,
		},
		{
			name: "HTML error page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, "<html><body>502 for "+r.URL.String()+"</body></html>")
			},
			wantReason: "unicommerce answered HTTP 502 with a", wantStatus: 502,
		},
		{
			name: "HTML login page under 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<!DOCTYPE html><html><body>login "+password+"</body></html>")
			},
			wantReason: "HTML body that is not a valid token response", wantStatus: 200,
		},
		{
			name: "garbage",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "{\"status\":SUCC\x00ESS")
			},
			wantReason: "not a valid token response", wantStatus: 200,
		},
		{
			name: "body over 1 MiB",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"status":"SUCCESS","accessToken":"`)
				io.WriteString(w, strings.Repeat("A", provider.MaxBody))
				io.WriteString(w, `"}`)
			},
			wantReason: "body over 1048576 bytes", wantStatus: 200,
		},
		{
			name: "timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
			},
			timeout:    100 * time.Millisecond,
			wantReason: "did not answer within 100ms",
		},
		{
			name: "redirect is not followed",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/login?"+r.URL.RawQuery, http.StatusFound)
			},
			permanent: true, wantReason: "unicommerce refused the request (HTTP 302)", wantStatus: 302,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			queries := make(chan url.Values, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, http.MethodGet, r.Method)
				assert.Equal(t, "/authToken", r.URL.Path)
				queries <- r.URL.Query()
				tt.handler(w, r)
			}))
			defer srv.Close()
			p, err := unicommerce.New(unicommerce.Config{BaseURL: srv.URL + "/", TokenTTL: tt.ttl, Timeout: tt.timeout,
				Client: provider.NewHTTPClient(2), Now: func() time.Time { return fixed }})
			require.NoError(t, err)

			tok, err := p.Refresh(context.Background(), conn)
			assert.Equal(t, url.Values{"username": {username}, "password": {password}}, <-queries,
				"the credentials arrive intact, query-encoded")
			if tt.wantToken != "" {
				require.NoError(t, err)
				assert.Equal(t, tt.wantToken, tok.AccessToken)
				assert.Empty(t, tok.RefreshToken, "unicommerce issues no refresh token")
				assert.Equal(t, fixed.Truncate(time.Second).Add(tt.wantExpiry), tok.ExpiresAt,
					"expiry is obtained-at (before the call, whole seconds) + token_ttl")
				return
			}
			require.Error(t, err)
			var f *token.Failure
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tt.permanent, f.Permanent, "permanence: %v", err)
			assert.Contains(t, err.Error(), tt.wantReason)
			assert.Equal(t, tt.wantStatus, f.Status)
			assert.Equal(t, tt.wantRetry, f.RetryAfter)
			assertNoCredentials(t, err.Error())
			assert.Less(t, len(err.Error()), 300, "an error never quotes a body")
		})
	}
}

// TestCredentialsNeverInErrors drives every way a call can fail at the
// transport level, with the shared client and with one that follows
// redirects, and checks that no error text carries the query string.
func TestCredentialsNeverInErrors(t *testing.T) {
	t.Parallel()
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()

	modes := map[string]struct {
		handler http.HandlerFunc
		baseURL string // instead of the server's
		https   bool   // the server speaks TLS the client does not trust
		ctx     func() (context.Context, context.CancelFunc)
		timeout time.Duration
	}{
		"connection refused": {baseURL: refusedURL},
		"unresolvable host":  {baseURL: "http://marketplace.invalid"},
		"timeout": {
			handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			timeout: 50 * time.Millisecond,
		},
		"cancelled": {
			handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				return ctx, cancel
			},
		},
		"redirect echoing the query": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusFound)
			},
		},
		"redirect to a refused port": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, refusedURL+"/authToken?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
			},
		},
		"redirect with an unparsable Location echoing the query": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Location"] = []string{"http://[::1/authToken?" + r.URL.RawQuery + "&raw=" + password}
				w.WriteHeader(http.StatusFound)
			},
		},
		"redirect loop": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, r.URL.String(), http.StatusFound)
			},
		},
		"5xx echoing the URL": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, r.URL.String())
			},
		},
		"4xx echoing the URL": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"status":"FAILED","message":"`+r.URL.String()+`"}`)
			},
		},
		"connection closed mid-answer": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, `{"status":"SUCC`)
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			},
		},
		"TLS the client does not trust": {
			handler: func(w http.ResponseWriter, r *http.Request) {},
			https:   true,
		},
	}
	clients := map[string]*http.Client{
		"shared client":              provider.NewHTTPClient(2),
		"client following redirects": {Timeout: 5 * time.Second},
	}
	for name, m := range modes {
		for clientName, client := range clients {
			t.Run(name+"/"+clientName, func(t *testing.T) {
				t.Parallel()
				base := m.baseURL
				if m.handler != nil {
					var srv *httptest.Server
					if m.https {
						srv = httptest.NewTLSServer(m.handler)
					} else {
						srv = httptest.NewServer(m.handler)
					}
					defer srv.Close()
					base = srv.URL
				}
				timeout := m.timeout
				if timeout == 0 {
					timeout = 5 * time.Second
				}
				p, err := unicommerce.New(unicommerce.Config{BaseURL: base, Timeout: timeout, Client: client})
				require.NoError(t, err)
				ctx, cancel := context.WithCancel(context.Background())
				if m.ctx != nil {
					ctx, cancel = m.ctx()
				}
				defer cancel()
				_, err = p.Refresh(ctx, conn)
				require.Error(t, err, "every mode fails")
				assert.ErrorAs(t, err, new(*token.Failure), "every failure is classified")
				assertNoCredentials(t, err.Error())
				assert.NotContains(t, err.Error(), "?", "no query string of any kind")
				t.Log(err)
			})
		}
	}
}

func TestRefreshMalformedInputFields(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	p, err := unicommerce.New(unicommerce.Config{BaseURL: srv.URL, Client: provider.NewHTTPClient(2)})
	require.NoError(t, err)
	for name, fields := range map[string]string{
		"not JSON":         `{"username":"` + username + `","password":"` + password + `"`,
		"missing password": `{"username":"` + username + `"}`,
		"missing username": `{"password":"` + password + `"}`,
		"number password":  `{"username":"` + username + `","password":12345}`,
		"null":             `null`,
		"empty":            ``,
	} {
		_, err := p.Refresh(context.Background(), token.Connection{ID: 1, InputFields: []byte(fields)})
		require.Error(t, err, name)
		assert.True(t, token.IsPermanent(err), "%s: malformed inputFields is permanent", name)
		assert.Contains(t, err.Error(), "malformed inputFields", name)
		assertNoCredentials(t, err.Error())
		assert.NotContains(t, err.Error(), "12345", name)
	}
	assert.Zero(t, calls.Load(), "malformed inputFields never reach the marketplace")
}

func TestNewRejectsBadBaseURL(t *testing.T) {
	t.Parallel()
	client := provider.NewHTTPClient(2)
	for _, base := range []string{"", "marketplace.example.com", "ftp://x", "https://u:p@x.example", "https://x.example/?a=b"} {
		_, err := unicommerce.New(unicommerce.Config{BaseURL: base, Client: client})
		assert.Error(t, err, base)
	}
	_, err := unicommerce.New(unicommerce.Config{BaseURL: "https://x.example"})
	assert.Error(t, err, "a client is required")
}
