// Package providertest is the conformance kit of the provider kinds: one
// table-driven run that takes every kind through the answer shapes all
// marketplaces share (5xx, 429 with Retry-After, HTML, garbage, a body over
// 1 MiB, a redirect, a timeout, a dropped connection...) against httptest
// servers, then through the kind's own rows, and checks each answer's
// verdict, reason, status, Retry-After, stored token and expiry, and that no
// error text quotes a secret. It follows the pattern of
// prometheus/alertmanager's notify/test: the kinds share one harness instead
// of hand-copied tests.
package providertest

import (
	"context"
	"errors"
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
	"github.com/eshopbox/token-refresher/internal/token"
)

// Now is the fixed clock the kit gives providers: obtained-at is Now
// truncated to the second.
var Now = time.Date(2026, 11, 23, 10, 0, 0, 700_000_000, time.UTC)

// Config is what a case sets on the provider under test.
type Config struct {
	BaseURL  string // the test server's URL (the kind appends its path)
	Timeout  time.Duration
	TokenTTL time.Duration
}

// Kind is one provider kind under test.
type Kind struct {
	Name string
	// New returns the kind's provider for cfg, with the shared HTTP client
	// (provider.NewHTTPClient) and the clock Now.
	New func(t *testing.T, cfg Config) token.Provider
	// Conn is the connection refreshed; its credentials are what the
	// server must receive.
	Conn token.Connection
	// Secrets must never appear in an error (passwords, client secrets,
	// refresh tokens, in every encoding the request uses).
	Secrets []string
	// CheckRequest asserts the request the kind sends (method, path,
	// credentials); it runs for every call.
	CheckRequest func(t *testing.T, r *http.Request)
	// Token writes a valid token answer: the body over 1 MiB case wraps it.
	Token func(w http.ResponseWriter, padding string)
	// Rows are the kind's own cases, run after Common.
	Rows []Case
}

// Case is one answer shape and what it must come to.
type Case struct {
	Name    string
	Handler http.HandlerFunc
	// Dead points the provider at a closed port instead of a server.
	Dead     bool
	Timeout  time.Duration
	TokenTTL time.Duration

	Verdict provider.Verdict
	// Reason is a substring the failure's reason must hold.
	Reason     string
	Status     int
	RetryAfter time.Duration
	// For Stored: the access token, the refresh token ("" when the kind
	// keeps the stored one) and the lifetime from obtained-at.
	Token, Refresh string
	Lifetime       time.Duration
}

// Echo writes the request back (its URL with query, and its body) into an
// answer body: a marketplace may quote its input, so every common shape
// carries it, and no error may repeat it.
func Echo(r *http.Request, body []byte) string {
	return r.URL.String() + " " + string(body)
}

// Common are the shapes every kind answers the same way.
func Common() []Case {
	return []Case{
		{Name: "HTTP 500 echoing the request", Verdict: provider.Transient, Reason: "answered HTTP 500", Status: 500,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, echoOf(r))
			}},
		{Name: "HTTP 503 with Retry-After", Verdict: provider.Transient, Reason: "answered HTTP 503", Status: 503,
			RetryAfter: 11 * time.Second,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "11")
				w.WriteHeader(http.StatusServiceUnavailable)
			}},
		{Name: "HTTP 429 with Retry-After", Verdict: provider.Transient, Reason: "rate limiting (HTTP 429)", Status: 429,
			RetryAfter: 7 * time.Second,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
			}},
		{Name: "HTML error page under 502", Verdict: provider.Transient, Reason: "HTTP 502 with a", Status: 502,
			Handler: html(http.StatusBadGateway)},
		{Name: "HTML page under 200", Verdict: provider.Transient, Reason: "text/html body (HTML)", Status: 200,
			Handler: html(http.StatusOK)},
		{Name: "HTML page under 401", Verdict: provider.Permanent, Reason: "rejected the credentials (HTTP 401)", Status: 401,
			Handler: html(http.StatusUnauthorized)},
		{Name: "empty 200", Verdict: provider.Transient, Reason: "HTTP 200 with an empty body", Status: 200,
			Handler: func(w http.ResponseWriter, r *http.Request) {}},
		{Name: "garbage 200", Verdict: provider.Unusable, Reason: "(garbage) that is not a token response", Status: 200,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, "{\"x\":tru\x00e,,, "+echoOf(r))
			}},
		{Name: "plain text 200", Verdict: provider.Unusable, Reason: "not a token response", Status: 200,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "OK")
			}},
		{Name: "truncated JSON 200", Verdict: provider.Transient, Reason: "(truncated)", Status: 200,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"status":"SUCCESS","success":true,"access_token":"AT`)
			}},
		{Name: "HTTP 404", Verdict: provider.Permanent, Reason: "refused the request (HTTP 404", Status: 404,
			Handler: func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }},
		{Name: "redirect echoing the request, not followed", Verdict: provider.Permanent,
			Reason: "refused the request (HTTP 302, a redirect, not followed)", Status: 302,
			Handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusFound)
			}},
		{Name: "timeout", Verdict: provider.Transient, Reason: "did not answer within 100ms", Timeout: 100 * time.Millisecond,
			Handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
		{Name: "connection dropped before an answer", Verdict: provider.Transient, Reason: "failed",
			Handler: func(w http.ResponseWriter, r *http.Request) {
				if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
					c.Close()
				}
			}},
		{Name: "connection dropped mid-answer", Verdict: provider.Transient, Reason: "failed",
			Handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "500")
				w.WriteHeader(http.StatusOK)
				io.WriteString(w, `{"status":"SUCC`)
				if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
					c.Close()
				}
			}},
		{Name: "connection refused", Verdict: provider.Transient, Reason: "connection refused", Dead: true},
	}
}

// Answer is a handler writing a JSON body under a status, for a kind's own
// rows.
func Answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func html(status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "<!DOCTYPE html><html><body>sign in: "+echoOf(r)+"</body></html>")
	}
}

// echoOf is Echo with the body the kit read before the handler ran.
func echoOf(r *http.Request) string {
	body, _ := r.Context().Value(bodyKey{}).([]byte)
	return Echo(r, body)
}

type bodyKey struct{}

// Run takes k through Common, the body over 1 MiB, and k.Rows.
func Run(t *testing.T, k Kind) {
	t.Helper()
	cases := append(Common(), Case{Name: "body over 1 MiB", Verdict: provider.Transient,
		Reason: "body over 1048576 bytes", Status: 200,
		Handler: func(w http.ResponseWriter, r *http.Request) { k.Token(w, strings.Repeat("A", provider.MaxBody)) }})
	cases = append(cases, k.Rows...)
	seen := map[string]bool{}
	for _, c := range cases {
		require.False(t, seen[c.Name], "case %q twice", c.Name)
		seen[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			runCase(t, k, c)
		})
	}
}

func runCase(t *testing.T, k Kind, c Case) {
	var calls, followed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/elsewhere") {
			followed.Add(1)
			return
		}
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		if k.CheckRequest != nil {
			k.CheckRequest(t, r)
		}
		r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, body))
		c.Handler(w, r)
	}))
	defer srv.Close()
	base := srv.URL
	if c.Dead {
		srv.Close()
	}
	p := k.New(t, Config{BaseURL: base, Timeout: c.Timeout, TokenTTL: c.TokenTTL})
	tok, err := p.Refresh(context.Background(), k.Conn)
	assert.Zero(t, followed.Load(), "a redirect is never followed")
	if !c.Dead {
		assert.Equal(t, int32(1), calls.Load(), "one call per refresh")
	}
	if c.Verdict == provider.Stored {
		require.NoError(t, err)
		assert.Equal(t, c.Token, tok.AccessToken)
		assert.Equal(t, c.Refresh, tok.RefreshToken)
		assert.Equal(t, Now.Truncate(time.Second).Add(c.Lifetime), tok.ExpiresAt,
			"expiry is obtained-at (before the call, whole seconds) + lifetime")
		return
	}
	require.Error(t, err)
	var f *token.Failure
	require.True(t, errors.As(err, &f), "every error is a *token.Failure: %v", err)
	assert.Equal(t, c.Verdict.String(), VerdictOf(err).String(), "verdict of: %v", err)
	assert.Contains(t, f.Reason, c.Reason)
	assert.Equal(t, c.Status, f.Status, "status")
	assert.Equal(t, c.RetryAfter, f.RetryAfter, "Retry-After")
	assert.Less(t, len(err.Error()), 300, "an error never quotes a body")
	for _, s := range k.Secrets {
		assert.NotContains(t, err.Error(), s, "an error never quotes a secret")
	}
	assert.NotContains(t, err.Error(), "?", "an error never quotes a query string")
}

// VerdictOf is the verdict a provider's error stands for (Stored for nil).
func VerdictOf(err error) provider.Verdict {
	if err == nil {
		return provider.Stored
	}
	return provider.Fails(token.ClassOf(err))
}
