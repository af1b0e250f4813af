package unicommerce_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
)

// TestDeclarativeUnicommerce runs the http_token entry of
// deploy/providers.declarative.example.yaml through Unicommerce's
// conformance table: the common shapes with their reasons, and every row
// of rows() with the same verdict, status, Retry-After, token and lifetime
// (reasons are worded by the kind), with the credentials in the query
// string kept out of every error. No row differs; answers outside the rows
// that do are listed in TestDeclarativeUnicommerceDifferences.
func TestDeclarativeUnicommerce(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.AsDeclarative(kind(),
		providertest.Declarative(t, deploy.DeclarativeExample, "43"), nil))
}

// TestDeclarativeUnicommerceDifferences lists the answers, outside the
// conformance rows, that the declarative entry places differently from the
// built-in kind, and why:
//
//   - SUCCESS with accessToken of another type (a number) beside a string
//     token: the built-in kind decodes into a typed struct and refuses the
//     whole answer (unusable); http_token tries the listed paths in order,
//     skips the one that is not a string and stores token.
func TestDeclarativeUnicommerceDifferences(t *testing.T) {
	t.Parallel()
	newDeclarative := providertest.Declarative(t, deploy.DeclarativeExample, "43")
	srv := httptest.NewServer(providertest.Answer(200, `{"status":"SUCCESS","accessToken":12,"token":"AT-t"}`))
	defer srv.Close()
	builtin, err := unicommerce.New(unicommerce.Config{BaseURL: srv.URL, Client: provider.NewHTTPClient(2)})
	require.NoError(t, err)
	_, errB := builtin.Refresh(context.Background(), conn)
	tok, errD := newDeclarative(t, providertest.Config{BaseURL: srv.URL}).Refresh(context.Background(), conn)
	assert.Equal(t, "unusable", providertest.VerdictOf(errB).String())
	require.NoError(t, errD)
	assert.Equal(t, "AT-t", tok.AccessToken)
}
