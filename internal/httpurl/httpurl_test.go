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
