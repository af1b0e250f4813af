package provider_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestDoNeverQuotesTheQuery: net/http quotes a redirect's unparsable Location
// verbatim, and a server may echo the request's query into it.
func TestDoNeverQuotesTheQuery(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Location"] = []string{"http://[::1/x?" + r.URL.RawQuery}
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	for name, client := range map[string]*http.Client{
		"shared":    provider.NewHTTPClient(2),
		"following": {Timeout: 5 * time.Second},
	} {
		u := srv.URL + "/authToken?" + url.Values{"password": {secret}}.Encode()
		req, err := http.NewRequest(http.MethodGet, u, nil)
		require.NoError(t, err)
		_, err = provider.Do(context.Background(), client, req, 5*time.Second)
		require.Error(t, err, name)
		var f *token.Failure
		require.ErrorAs(t, err, &f, name)
		assert.NotEqual(t, token.ClassPermanent, f.Class, name)
		assert.NotContains(t, err.Error(), secret, name)
		assert.NotContains(t, err.Error(), "password=", name)
		assert.Contains(t, err.Error(), srv.URL+"/authToken", "%s: the endpoint is named, without its query", name)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	u, err := url.Parse("https://user:pw@api.example.com/authToken?username=a&password=b#frag")
	require.NoError(t, err)
	assert.Equal(t, "https://api.example.com/authToken", provider.Redact(u))
	assert.Equal(t, "", provider.Redact(nil))
}
