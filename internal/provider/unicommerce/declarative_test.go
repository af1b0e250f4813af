package unicommerce_test

import (
	"testing"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
)

// TestDeclarativeUnicommerce runs the http_token entry of
// deploy/providers.declarative.example.yaml through Unicommerce's
// conformance table: the common shapes with their reasons, and every row
// of rows() with the same verdict, status, Retry-After, token and lifetime
// (reasons are worded by the kind), with the credentials in the query
// string kept out of every error. No row differs.
func TestDeclarativeUnicommerce(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.AsDeclarative(kind(),
		providertest.Declarative(t, deploy.DeclarativeExample, "43"), nil))
}
