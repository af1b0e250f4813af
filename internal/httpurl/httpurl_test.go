package httpurl_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/httpurl"
)

func TestAbsoluteAndPlain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		raw             string
		absolute, plain error
	}{
		{"https://api.example.com/v1", nil, nil},
		{"http://127.0.0.1:8080", nil, nil},
		{"HTTPS://api.example.com", nil, nil}, // url.Parse lower-cases the scheme
		{"api.example.com", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"/v1/token", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"ftp://example.com", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"https://", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"https://exa mple.com", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"", httpurl.ErrNotAbsolute, httpurl.ErrNotAbsolute},
		{"https://user:pw-do-not-show@example.com", nil, httpurl.ErrSecretParts},
		{"https://example.com/hook?token=do-not-show", nil, httpurl.ErrSecretParts},
	} {
		u, err := httpurl.Absolute(tt.raw)
		assert.Equal(t, tt.absolute, err, "Absolute(%q)", tt.raw)
		if err == nil {
			require.NotNil(t, u)
			assert.NotEmpty(t, u.Host)
		}
		_, err = httpurl.Plain(tt.raw)
		assert.Equal(t, tt.plain, err, "Plain(%q)", tt.raw)
		if err != nil {
			assert.NotContains(t, err.Error(), "do-not-show", "an error never repeats the URL")
		}
	}
}

// TestSecure: http:// is refused to any host but loopback unless allowed.
func TestSecure(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]error{
		"https://api.example.com":            nil,
		"https://10.0.0.7:8443/x":            nil,
		"http://127.0.0.1:8089":              nil,
		"http://127.1.2.3":                   nil,
		"http://[::1]:8080/x":                nil,
		"http://localhost:8080":              nil,
		"http://LOCALHOST.":                  nil,
		"http://sandbox.localhost":           nil,
		"http://sandbox:8089":                httpurl.ErrInsecureHTTP,
		"http://api.example.com/token":       httpurl.ErrInsecureHTTP,
		"http://10.0.0.7":                    httpurl.ErrInsecureHTTP,
		"http://[2001:db8::1]:80":            httpurl.ErrInsecureHTTP,
		"http://localhost.example.com":       httpurl.ErrInsecureHTTP,
		"http://127.0.0.1.nip.io":            httpurl.ErrInsecureHTTP,
		"http://user:do-not-show@evil.test/": httpurl.ErrInsecureHTTP,
	} {
		u, err := httpurl.Absolute(raw)
		require.NoError(t, err, raw)
		assert.Equal(t, want, httpurl.Secure(u, false), raw)
		assert.NoError(t, httpurl.Secure(u, true), "%s: allowed explicitly", raw)
	}
	assert.NotContains(t, httpurl.ErrInsecureHTTP.Error(), "do-not-show")
}
