package ajio_test

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
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/token"
)

const password = "s3cret-pa55"

var conn = token.Connection{ID: 11, IntegrationType: "16",
	InputFields: []byte(`{"username":"abc@itc.com","password":"` + password + `"}`)}

func kind() providertest.Kind {
	return providertest.Kind{
		Name: "ajio",
		New: func(t *testing.T, cfg providertest.Config) token.Provider {
			p, err := ajio.New(ajio.Config{BaseURL: cfg.BaseURL + "/", Timeout: cfg.Timeout, TokenTTL: cfg.TokenTTL,
				Client: provider.NewHTTPClient(2), Now: func() time.Time { return providertest.Now }})
			require.NoError(t, err)
			return p
		},
		Conn:    conn,
		Secrets: []string{password},
		CheckRequest: func(t *testing.T, r *http.Request) {
			var got map[string]string
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/authToken", r.URL.Path)
			assert.Equal(t, "application/json", r.Header.Get("Content-Type"))
			assert.NoError(t, json.NewDecoder(r.Body).Decode(&got))
			assert.Equal(t, map[string]string{"username": "abc@itc.com", "password": password}, got)
		},
		Token: func(w http.ResponseWriter, padding string) {
			io.WriteString(w, `{"success":true,"statusCode":0,"result":{"accessToken":"AT-`+padding+`"}}`)
		},
		Rows: rows(),
	}
}

// rows are Ajio's own shapes: one or more per row of ajio.Verdicts.
func rows() []providertest.Case {
	const (
		P = provider.Permanent
		T = provider.Transient
		U = provider.Unusable
	)
	refused := "ajio rejected the credentials"
	return []providertest.Case{
		{Name: "success", Handler: providertest.Answer(200, `{"success":true,"statusCode":0,"result":{"accessToken":"AT-1","refreshToken":"RT-1"}}`),
			Verdict: provider.Stored, Token: "AT-1", Refresh: "RT-1", Lifetime: 30 * time.Minute},
		{Name: "success labelled text/plain", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, `{"success":true,"result":{"accessToken":"AT-2"}}`)
		}, Verdict: provider.Stored, Token: "AT-2", Lifetime: 30 * time.Minute},
		{Name: "success with a configured lifetime", TokenTTL: 20 * time.Minute,
			Handler: providertest.Answer(200, `{"success":true,"result":{"accessToken":"AT-3"}}`),
			Verdict: provider.Stored, Token: "AT-3", Lifetime: 20 * time.Minute},
		{Name: "success:false statusCode 401 echoing the password", Handler: providertest.Answer(200, `{"success":false,"statusCode":401,"message":"bad password `+password+`"}`),
			Verdict: P, Reason: refused + " (success:false, statusCode 401)", Status: 200},
		{Name: "success:false statusCode 403 under 500", Handler: providertest.Answer(500, `{"success":false,"statusCode":403}`),
			Verdict: P, Reason: refused + " (success:false, statusCode 403)", Status: 500},
		{Name: "success:false statusCode \"400\" as a string", Handler: providertest.Answer(200, `{"success":false,"statusCode":"400"}`),
			Verdict: P, Reason: "statusCode 400", Status: 200},
		{Name: "success:false statusCode 500 under 200: retry", Handler: providertest.Answer(200, `{"success":false,"statusCode":500,"message":"Internal error, please retry"}`),
			Verdict: T, Reason: "ajio failed on its side (success:false, statusCode 500, HTTP 200)", Status: 200},
		{Name: "success:false statusCode 503 under 200 with Retry-After", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			providertest.Answer(200, `{"success":false,"statusCode":503}`)(w, r)
		}, Verdict: T, Reason: "statusCode 503", Status: 200, RetryAfter: 30 * time.Second},
		{Name: "success:false statusCode 429 under 200", Handler: providertest.Answer(200, `{"success":false,"statusCode":429}`),
			Verdict: T, Reason: "statusCode 429", Status: 200},
		{Name: "success:false statusCode 408 under 400", Handler: providertest.Answer(400, `{"success":false,"statusCode":408}`),
			Verdict: T, Reason: "statusCode 408", Status: 400},
		{Name: "success:false without statusCode under 200", Handler: providertest.Answer(200, `{"success":false,"message":"invalid"}`),
			Verdict: P, Reason: refused + " (success:false, no statusCode, HTTP 200)", Status: 200},
		{Name: "success:false statusCode null under 400", Handler: providertest.Answer(400, `{"success":false,"statusCode":null}`),
			Verdict: P, Reason: "no statusCode, HTTP 400", Status: 400},
		{Name: "success:false without statusCode under 502", Handler: providertest.Answer(502, `{"success":false}`),
			Verdict: T, Reason: "answered HTTP 502", Status: 502},
		{Name: "success:false statusCode 0", Handler: providertest.Answer(200, `{"success":false,"statusCode":0}`),
			Verdict: U, Reason: "neither 4xx nor 5xx", Status: 200},
		{Name: "success:false statusCode 200", Handler: providertest.Answer(200, `{"success":false,"statusCode":200}`),
			Verdict: U, Reason: "neither 4xx nor 5xx", Status: 200},
		{Name: "success:false statusCode not a number", Handler: providertest.Answer(200, `{"success":false,"statusCode":"`+password+`"}`),
			Verdict: U, Reason: "neither 4xx nor 5xx", Status: 200},
		{Name: "HTTP 401 success:false", Handler: providertest.Answer(401, `{"success":false}`),
			Verdict: P, Reason: refused + " (success:false, no statusCode, HTTP 401)", Status: 401},
		{Name: "HTTP 403 empty", Handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) },
			Verdict: P, Reason: refused + " (HTTP 403)", Status: 403},
		{Name: "HTTP 400 garbage", Handler: providertest.Answer(400, "nope"),
			Verdict: P, Reason: "refused the request (HTTP 400", Status: 400},
		{Name: "success:true with an empty token", Handler: providertest.Answer(200, `{"success":true,"result":{"accessToken":" "}}`),
			Verdict: U, Reason: "success:true without an access token", Status: 200},
		{Name: "success:true without result", Handler: providertest.Answer(200, `{"success":true}`),
			Verdict: U, Reason: "success:true without an access token", Status: 200},
		{Name: "JSON without success", Handler: providertest.Answer(200, `{"result":{"accessToken":"AT-9"}}`),
			Verdict: U, Reason: "(JSON) that is not a token response", Status: 200},
		{Name: "success of another type", Handler: providertest.Answer(200, `{"success":"true","result":{"accessToken":"AT-9"}}`),
			Verdict: U, Reason: "(garbage)", Status: 200},
		{Name: "a form", Handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
			io.WriteString(w, "accessToken=AT-9&success=true")
		}, Verdict: U, Reason: "(form)", Status: 200},
		{Name: "success:true under 201", Handler: providertest.Answer(201, `{"success":true,"result":{"accessToken":"AT-4"}}`),
			Verdict: provider.Stored, Token: "AT-4", Lifetime: 30 * time.Minute},
		{Name: "success:true under 500", Handler: providertest.Answer(500, `{"success":true,"result":{"accessToken":"AT-5"}}`),
			Verdict: T, Reason: "HTTP 500", Status: 500},
	}
}

// TestVerdicts runs Ajio through the conformance kit and its own rows.
func TestVerdicts(t *testing.T) {
	t.Parallel()
	providertest.Run(t, kind())
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
