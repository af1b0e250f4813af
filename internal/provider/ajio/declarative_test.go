package ajio_test

import (
	"context"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestDeclarativeAjio runs the http_token entry of
// deploy/providers.declarative.example.yaml through Ajio's conformance
// table: the common shapes with their reasons, and every row of rows() with
// the same verdict, status, Retry-After, token and lifetime (reasons are
// worded by the kind). No row differs; answers outside the rows that do are
// listed in TestDeclarativeAjioDifferences.
func TestDeclarativeAjio(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.AsDeclarative(kind(),
		providertest.Declarative(t, deploy.DeclarativeExample, "16"), nil))
}

// TestDeclarativeAjioDifferences lists the answers, outside the
// conformance rows, that the declarative entry places differently from the
// built-in kind, and why. Both providers get the same answer here, so a
// change on either side shows.
//
//   - success:false with statusCode 401.0 (or 4.01e2): the built-in kind
//     reads statusCode as an integer literal only and calls the answer
//     unusable; http_token reads JSON numbers, and 401.0 is the number 401,
//     a 4xx refusal, so it is permanent. The JSON value is the same number;
//     the declarative reading is kept.
//   - success:true with an access token and a refreshToken that is not a
//     string: the built-in kind decodes into a typed struct and refuses the
//     whole answer (unusable); http_token reads only the paths the entry
//     names, stores the access token and keeps the stored refresh token.
func TestDeclarativeAjioDifferences(t *testing.T) {
	t.Parallel()
	newDeclarative := providertest.Declarative(t, deploy.DeclarativeExample, "16")
	for _, c := range []struct {
		body                 string
		builtin, declarative provider.Verdict
	}{
		{`{"success":false,"statusCode":401.0}`, provider.Unusable, provider.Permanent},
		{`{"success":false,"statusCode":4.01e2}`, provider.Unusable, provider.Permanent},
		{`{"success":true,"result":{"accessToken":"AT-1","refreshToken":5}}`, provider.Unusable, provider.Stored},
	} {
		srv := httptest.NewServer(providertest.Answer(200, c.body))
		builtin, err := ajio.New(ajio.Config{BaseURL: srv.URL, Client: provider.NewHTTPClient(2)})
		require.NoError(t, err)
		_, errB := builtin.Refresh(context.Background(), conn)
		_, errD := newDeclarative(t, providertest.Config{BaseURL: srv.URL}).Refresh(context.Background(), conn)
		srv.Close()
		assert.Equal(t, c.builtin.String(), providertest.VerdictOf(errB).String(), "built-in: %s", c.body)
		assert.Equal(t, c.declarative.String(), providertest.VerdictOf(errD).String(), "declarative: %s", c.body)
	}
}

// BenchmarkRefresh compares one Ajio refresh through the built-in kind and
// through its declarative entry, against a local server (what the
// declaration costs: the JSON-path reading and the rule matching).
func BenchmarkRefresh(b *testing.B) {
	srv := httptest.NewServer(providertest.Answer(200, `{"success":true,"statusCode":0,"result":{"accessToken":"AT-1","refreshToken":"RT-1"}}`))
	defer srv.Close()
	builtin, err := ajio.New(ajio.Config{BaseURL: srv.URL, Client: provider.NewHTTPClient(4)})
	require.NoError(b, err)
	entries, err := registry.Parse(deploy.DeclarativeExample, "", os.Getenv)
	require.NoError(b, err)
	e := entries[0]
	e.BaseURL = srv.URL
	declarative, err := registry.Build(e, provider.NewHTTPClient(4), os.Getenv)
	require.NoError(b, err)
	for name, p := range map[string]interface {
		Refresh(context.Context, token.Connection) (token.Token, error)
	}{"builtin": builtin, "declarative": declarative} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := p.Refresh(context.Background(), conn); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
