package providertest

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Declarative returns a Kind.New for the http_token entry of integration
// type it in a providers file, as registry.Parse validates it: the kit's
// server stands in for its base_url, and a case's TokenTTL for its
// token_ttl.
func Declarative(t *testing.T, file []byte, it string) func(t *testing.T, cfg Config) token.Provider {
	t.Helper()
	entries, err := registry.Parse(file, "", os.Getenv)
	require.NoError(t, err)
	var entry *registry.Entry
	for i := range entries {
		if entries[i].IntegrationType == it {
			entry = &entries[i]
		}
	}
	require.NotNil(t, entry, "integration type %s in the file", it)
	require.Equal(t, registry.KindHTTPToken, entry.Kind)
	return func(t *testing.T, cfg Config) token.Provider {
		ttl := entry.TTL()
		if cfg.TokenTTL != 0 {
			ttl = cfg.TokenTTL
		}
		p, err := httptoken.New(httptoken.Config{Name: entry.Marketplace, BaseURL: cfg.BaseURL, Spec: *entry.Spec,
			TokenTTL: ttl, Timeout: cfg.Timeout, Client: provider.NewHTTPClient(2),
			Now: func() time.Time { return Now }})
		require.NoError(t, err)
		return p
	}
}

// Differences overrides the verdict (and reason) of the rows where a
// declarative entry differs from the built-in kind it copies: each must
// carry its justification in the test that lists it.
type Differences map[string]Case

// AsDeclarative returns k's rows for a declarative twin: the same answer,
// verdict, status, Retry-After, token and lifetime; the reason's wording is
// the kind's own, so it is not compared; rows named in diff take diff's
// verdict and reason.
func AsDeclarative(k Kind, newFn func(t *testing.T, cfg Config) token.Provider, diff Differences) Kind {
	k.Name += " (declarative)"
	k.New = newFn
	rows := make([]Case, len(k.Rows))
	for i, c := range k.Rows {
		if d, ok := diff[c.Name]; ok {
			c.Verdict, c.Reason, c.Status = d.Verdict, d.Reason, d.Status
		} else {
			c.Reason = ""
		}
		rows[i] = c
	}
	k.Rows = rows
	return k
}
