package ajio_test

import (
	"testing"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
)

// TestDeclarativeAjio runs the http_token entry of
// deploy/providers.declarative.example.yaml through Ajio's conformance
// table: the common shapes with their reasons, and every row of rows() with
// the same verdict, status, Retry-After, token and lifetime (reasons are
// worded by the kind). No row differs.
func TestDeclarativeAjio(t *testing.T) {
	t.Parallel()
	providertest.Run(t, providertest.AsDeclarative(kind(),
		providertest.Declarative(t, deploy.DeclarativeExample, "16"), nil))
}
