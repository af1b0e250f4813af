package ajio_test

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
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/token"
)

const password = "s3cret-pa55"

var conn = token.Connection{ID: 11, IntegrationType: "16",
	InputFields: []byte(`{"username":"abc@itc.com","password":"` + password + `"}`)}

func TestRefresh(t *testing.T) {
	t.Parallel()
	fixed := time.Date(2026, 11, 23, 10, 0, 0, 700_000_000, time.UTC)
	tests := []struct {
		name       string
		handler    http.HandlerFunc
		timeout    time.Duration
		wantToken  string
		permanent  bool
		wantReason string
		wantStatus int
	}{
		{
			name: "success",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"success":true,"statusCode":0,"result":{"accessToken":"AT-1","refreshToken":"RT-1"}}`)
			},
			wantToken: "AT-1",
		},
		{
			name: "success false is rejected credentials",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"success":false,"statusCode":401,"message":"bad password `+password+`"}`)
			},
			permanent: true, wantReason: "ajio rejected the credentials (success:false, statusCode 401)", wantStatus: 200,
		},
		{
			name: "401",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"success":false}`)
			},
			permanent: true, wantReason: "ajio rejected the credentials (HTTP 401)", wantStatus: 401,
		},
		{
			name: "5xx",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, `{"error":"down"}`)
			},
			wantReason: "ajio answered HTTP 503", wantStatus: 503,
		},
		{
			name: "HTML body with 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				io.WriteString(w, "<!DOCTYPE html><html><body>login "+password+"</body></html>")
			},
			wantReason: "text/html, HTML body that is not a valid token response", wantStatus: 200,
		},
		{
			name: "HTML error page",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(http.StatusBadGateway)
				io.WriteString(w, "<html><body>502</body></html>")
			},
			wantReason: "ajio answered HTTP 502 with a", wantStatus: 502,
		},
		{
			name: "success true with empty token",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"success":true,"statusCode":0,"result":{"accessToken":"","refreshToken":"RT"}}`)
			},
			wantReason: "without an access token", wantStatus: 200,
		},
		{
			name: "garbage",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "{\"success\":tru\x00e")
			},
			wantReason: "not a valid token response", wantStatus: 200,
		},
		{
			name: "body over 1 MiB",
			handler: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"success":true,"statusCode":0,"result":{"accessToken":"`)
				io.WriteString(w, strings.Repeat("A", provider.MaxBody))
				io.WriteString(w, `"}}`)
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
			name: "429 with Retry-After",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(http.StatusTooManyRequests)
			},
			wantReason: "rate limiting (HTTP 429)", wantStatus: 429,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bodies := make(chan map[string]string, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var got map[string]string
				assert.Equal(t, http.MethodPost, r.Method)
				assert.Equal(t, "/authToken", r.URL.Path)
				assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
				assert.NoError(t, json.NewDecoder(r.Body).Decode(&got))
				bodies <- got
				tt.handler(w, r)
			}))
			defer srv.Close()
			p, err := ajio.New(ajio.Config{BaseURL: srv.URL + "/", Timeout: tt.timeout, Client: provider.NewHTTPClient(2),
				Now: func() time.Time { return fixed }})
			require.NoError(t, err)

			tok, err := p.Refresh(context.Background(), conn)
			assert.Equal(t, map[string]string{"username": "abc@itc.com", "password": password}, <-bodies)
			if tt.wantToken != "" {
				require.NoError(t, err)
				assert.Equal(t, tt.wantToken, tok.AccessToken)
				assert.Equal(t, "RT-1", tok.RefreshToken)
				assert.Equal(t, fixed.Truncate(time.Second).Add(30*time.Minute), tok.ExpiresAt,
					"expiry is obtained-at (before the call, whole seconds) + 30m")
				return
			}
			require.Error(t, err)
			var f *token.Failure
			require.ErrorAs(t, err, &f)
			assert.Equal(t, tt.permanent, f.Permanent, "permanence: %v", err)
			assert.Contains(t, err.Error(), tt.wantReason)
			assert.Equal(t, tt.wantStatus, f.Status)
			assert.NotContains(t, err.Error(), password, "an error must never quote the password")
			assert.Less(t, len(err.Error()), 300, "an error never quotes a body")
			if tt.name == "429 with Retry-After" {
				assert.Equal(t, 7*time.Second, f.RetryAfter)
			}
		})
	}
}

func TestRefreshMalformedInputFields(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	defer srv.Close()
	p, err := ajio.New(ajio.Config{BaseURL: srv.URL, Client: provider.NewHTTPClient(2)})
	require.NoError(t, err)
	for name, fields := range map[string]string{
		"not JSON":         `{"username":"abc@itc.com","password":"` + password + `"`,
		"array":            `["abc@itc.com","` + password + `"]`,
		"missing password": `{"username":"abc@itc.com"}`,
		"empty username":   `{"username":"","password":"` + password + `"}`,
		"number password":  `{"username":"abc@itc.com","password":12345}`,
		"null":             `null`,
		"empty":            ``,
	} {
		_, err := p.Refresh(context.Background(), token.Connection{ID: 1, InputFields: []byte(fields)})
		require.Error(t, err, name)
		assert.True(t, token.IsPermanent(err), "%s: malformed inputFields is permanent", name)
		assert.Contains(t, err.Error(), "malformed inputFields", name)
		assert.NotContains(t, err.Error(), password, name)
		assert.NotContains(t, err.Error(), "12345", name)
	}
	assert.Zero(t, calls.Load(), "malformed inputFields never reach the marketplace")
}

func TestRefreshConnectionRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p, err := ajio.New(ajio.Config{BaseURL: url, Client: provider.NewHTTPClient(2)})
	require.NoError(t, err)
	_, err = p.Refresh(context.Background(), conn)
	require.Error(t, err)
	assert.False(t, token.IsPermanent(err), "a network error is transient")
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error(), password)
}
