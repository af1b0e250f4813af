package unicommerce_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
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

func kind() providertest.Kind {
	return providertest.Kind{
		Name: "unicommerce",
		New: func(t *testing.T, cfg providertest.Config) token.Provider {
			p, err := unicommerce.New(unicommerce.Config{BaseURL: cfg.BaseURL + "/", TokenTTL: cfg.TokenTTL, Timeout: cfg.Timeout,
				Client: provider.NewHTTPClient(2), Now: func() time.Time { return providertest.Now }})
			require.NoError(t, err)
			return p
		},
		Conn:    conn,
		Secrets: leaks(),
		CheckRequest: func(t *testing.T, r *http.Request) {
			assert.Equal(t, http.MethodGet, r.Method)
			assert.Equal(t, "/authToken", r.URL.Path)
			assert.Equal(t, url.Values{"username": {username}, "password": {password}}, r.URL.Query(),
				"the credentials arrive intact, query-encoded")
		},
		Token: func(w http.ResponseWriter, padding string) {
			io.WriteString(w, `{"status":"SUCCESS","accessToken":"AT-`+padding+`"}`)
		},
		Rows: rows(),
	}
}

// rows are Unicommerce's own shapes: one or more per row of
// unicommerce.Verdicts.
func rows() []providertest.Case {
	const (
		P = provider.Permanent
		T = provider.Transient
		U = provider.Unusable
		S = provider.Stored
	)
	day := 24 * time.Hour
	return []providertest.Case{
		{Name: "success", Handler: providertest.Answer(200, `{"status":"SUCCESS","accessToken":"as23djaexnsnJsnJSW34snapl"}`),
			Verdict: S, Token: "as23djaexnsnJsnJSW34snapl", Lifetime: day},
		{Name: "success with a configured lifetime", TokenTTL: 48 * time.Hour, Handler: providertest.Answer(200, `{"status":"SUCCESS","accessToken":"AT-48"}`),
			Verdict: S, Token: "AT-48", Lifetime: 48 * time.Hour},
		{Name: "lowercase success", Handler: providertest.Answer(200, `{"status":"success","accessToken":"AT-lc"}`),
			Verdict: S, Token: "AT-lc", Lifetime: day},
		{Name: "success labelled text/plain", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, `{"status":"SUCCESS","accessToken":"AT-tp"}`)
		}, Verdict: S, Token: "AT-tp", Lifetime: day},
		{Name: "success with token (public docs' spelling)", Handler: providertest.Answer(200, `{"status":"SUCCESS","token":"AT-t"}`),
			Verdict: S, Token: "AT-t", Lifetime: day},
		{Name: "success with access_token (public docs' spelling)", Handler: providertest.Answer(200, `{"status":"SUCCESS","access_token":"AT-at"}`),
			Verdict: S, Token: "AT-at", Lifetime: day},
		{Name: "FAILED echoing the password", Handler: providertest.Answer(200, `{"status":"FAILED","message":"bad password `+password+`"}`),
			Verdict: P, Reason: "unicommerce rejected the credentials (status FAILED, HTTP 200)", Status: 200},
		{Name: "INVALID_CREDENTIALS (public docs)", Handler: providertest.Answer(200, `{"status":"INVALID_CREDENTIALS"}`),
			Verdict: P, Reason: "rejected the credentials (status INVALID_CREDENTIALS, HTTP 200)", Status: 200},
		{Name: "Failure in mixed case", Handler: providertest.Answer(200, `{"status":"Failure"}`),
			Verdict: P, Reason: "(status FAILURE, HTTP 200)", Status: 200},
		{Name: "FAILED under 401", Handler: providertest.Answer(401, `{"status":"FAILED"}`),
			Verdict: P, Reason: "(status FAILED, HTTP 401)", Status: 401},
		{Name: "FAILED under 500", Handler: providertest.Answer(500, `{"status":"FAILED"}`),
			Verdict: P, Reason: "(status FAILED, HTTP 500)", Status: 500},
		{Name: "HTTP 401 without a body", Handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(401) },
			Verdict: P, Reason: "rejected the credentials (HTTP 401)", Status: 401},
		{Name: "HTTP 400 with another status word", Handler: providertest.Answer(400, `{"status":"BAD_REQUEST"}`),
			Verdict: P, Reason: "refused the request (HTTP 400", Status: 400},
		{Name: "HTTP 503 with SUCCESS", Handler: providertest.Answer(503, `{"status":"SUCCESS","accessToken":"AT"}`),
			Verdict: T, Reason: "answered HTTP 503", Status: 503},
		{Name: "SUCCESS without a token", Handler: providertest.Answer(200, `{"status":"SUCCESS","accessToken":" "}`),
			Verdict: U, Reason: "SUCCESS without an access token", Status: 200},
		{Name: "an unknown status word echoing the password", Handler: providertest.Answer(200, `{"status":"`+password+`"}`),
			Verdict: U, Reason: "unrecognised status", Status: 200},
		{Name: "PENDING", Handler: providertest.Answer(200, `{"status":"PENDING"}`),
			Verdict: U, Reason: "unrecognised status", Status: 200},
		{Name: "no status", Handler: providertest.Answer(200, `{"accessToken":"AT"}`),
			Verdict: U, Reason: "(JSON) that is not a token response", Status: 200},
		{Name: "status of another type", Handler: providertest.Answer(200, `{"status":1,"accessToken":"AT"}`),
			Verdict: U, Reason: "(garbage)", Status: 200},
	}
}

// TestVerdicts runs Unicommerce through the conformance kit and its own
// rows.
func TestVerdicts(t *testing.T) {
	t.Parallel()
	providertest.Run(t, kind())
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
		"unresolvable host":  {baseURL: "https://marketplace.invalid"},
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
