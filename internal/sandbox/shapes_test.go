package sandbox_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/provider/providertest"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/token"
)

// TestShapesMeetTheVerdictTables drives the product's three clients
// against the sandbox in every answer shape, for everything and for one
// seller, and checks the verdict each kind's table gives it: the switch
// makes the shape, the table places it.
func TestShapesMeetTheVerdictTables(t *testing.T) {
	t.Parallel()
	const (
		S = provider.Stored
		P = provider.Permanent
		T = provider.Transient
		U = provider.Unusable
	)
	// want[shape] is the verdict for ajio, oauth2_refresh, unicommerce.
	want := map[string][3]provider.Verdict{
		sandbox.ShapeForm:             {U, S, U},
		sandbox.ShapeTextPlain:        {S, S, S},
		sandbox.ShapeExpiresInString:  {S, S, S},
		sandbox.ShapeAbsurdExpiresIn:  {S, S, S},
		sandbox.ShapeNoExpiresIn:      {S, U, S},
		sandbox.ShapeRefusalIn200:     {P, P, P},
		sandbox.ShapeServerErrorIn200: {T, T, T},
		sandbox.ShapeUnknown:          {U, U, U},
		sandbox.ShapeTruncated:        {T, T, T},
		sandbox.ShapeEmpty:            {T, T, T},
		sandbox.ShapeRedirect:         {P, P, P},
		sandbox.ShapeDrop:             {T, T, T},
		sandbox.ShapeHuge:             {T, T, T},
	}
	require.Len(t, want, len(sandbox.Shapes), "every shape has its verdicts")

	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	client := provider.NewHTTPClient(4)
	a, err := ajio.New(ajio.Config{BaseURL: srv.URL, Client: client, Timeout: 5 * time.Second})
	require.NoError(t, err)
	o, err := oauth2refresh.New(oauth2refresh.Config{TokenURL: srv.URL + "/oauth/token", Client: client,
		ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret, Timeout: 5 * time.Second})
	require.NoError(t, err)
	u, err := unicommerce.New(unicommerce.Config{BaseURL: srv.URL, Client: client, Timeout: 5 * time.Second})
	require.NoError(t, err)

	seller := "shapes" + sandbox.GeneratedDomain
	login := []byte(`{"username":"` + seller + `","password":"` + sandbox.Password(seller) + `"}`)
	other := "plain" + sandbox.GeneratedDomain
	otherLogin := []byte(`{"username":"` + other + `","password":"` + sandbox.Password(other) + `"}`)
	kinds := []struct {
		p           token.Provider
		conn, plain token.Connection
	}{
		{a, token.Connection{InputFields: login}, token.Connection{InputFields: otherLogin}},
		{o, token.Connection{RefreshToken: sandbox.RefreshToken(seller)}, token.Connection{RefreshToken: sandbox.RefreshToken(other)}},
		{u, token.Connection{InputFields: login}, token.Connection{InputFields: otherLogin}},
	}
	for _, shape := range sandbox.Shapes {
		// Per seller: only that seller's answers change.
		sb.SetFaults(sandbox.Faults{ShapeBy: map[string]string{seller: shape}})
		for i, k := range kinds {
			_, err := k.p.Refresh(context.Background(), k.conn)
			assert.Equal(t, want[shape][i].String(), providertest.VerdictOf(err).String(), "shape %s, kind %d (per seller): %v", shape, i, err)
			_, err = k.p.Refresh(context.Background(), k.plain)
			assert.NoError(t, err, "shape %s, kind %d: another seller is answered normally", shape, i)
		}
		// For everything.
		sb.SetFaults(sandbox.Faults{Shape: shape})
		for i, k := range kinds {
			_, err := k.p.Refresh(context.Background(), k.plain)
			assert.Equal(t, want[shape][i].String(), providertest.VerdictOf(err).String(), "shape %s, kind %d (everything): %v", shape, i, err)
		}
	}
}

// TestShortTokensPerSeller: OAuthExpiresInBy gives one seller short tokens.
func TestShortTokensPerSeller(t *testing.T) {
	t.Parallel()
	sb := sandbox.New()
	srv := httptest.NewServer(sb.Handler())
	t.Cleanup(srv.Close)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	o, err := oauth2refresh.New(oauth2refresh.Config{TokenURL: srv.URL + "/oauth/token", Client: provider.NewHTTPClient(2),
		ClientID: sandbox.DefaultClientID, ClientSecret: sandbox.DefaultClientSecret, Now: func() time.Time { return now }})
	require.NoError(t, err)
	sb.SetFaults(sandbox.Faults{OAuthExpiresInBy: map[string]int{"short": 240}})
	tok, err := o.Refresh(context.Background(), token.Connection{RefreshToken: sandbox.RefreshToken("short")})
	require.NoError(t, err)
	assert.Equal(t, now.Add(4*time.Minute), tok.ExpiresAt)
	tok, err = o.Refresh(context.Background(), token.Connection{RefreshToken: sandbox.RefreshToken("long")})
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Hour), tok.ExpiresAt)
}
