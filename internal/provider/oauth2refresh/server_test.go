package oauth2refresh_test

// The client against an OAuth 2.0 server the project did not write:
// github.com/go-oauth2/oauth2/v4, in process, with refresh-token rotation
// (a new refresh token with every refresh, the old one removed). This is a
// test-only dependency.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	oauth2 "github.com/go-oauth2/oauth2/v4"
	oautherrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/token"
)

// authServer is a go-oauth2 server with one seller and two clients; the
// second is not allowed the refresh grant.
type authServer struct {
	url string
	srv *server.Server
}

const (
	sellerName     = "seller@itc.com"
	sellerPassword = "seller-pw"
	otherClientID  = "app-without-refresh"
)

func newAuthServer(t *testing.T, rotate bool) *authServer {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	require.NoError(t, clients.Set(clientID, &models.Client{ID: clientID, Secret: clientSecret, Domain: "http://localhost"}))
	require.NoError(t, clients.Set(otherClientID, &models.Client{ID: otherClientID, Secret: "other-secret", Domain: "http://localhost"}))
	manager.MapClientStorage(clients)
	manager.SetPasswordTokenCfg(&manage.Config{AccessTokenExp: time.Hour, RefreshTokenExp: 24 * time.Hour, IsGenerateRefresh: true})
	manager.SetRefreshTokenCfg(&manage.RefreshingConfig{
		AccessTokenExp:     30 * time.Minute,
		RefreshTokenExp:    24 * time.Hour,
		IsGenerateRefresh:  rotate, // rotation: a new refresh token every time
		IsRemoveRefreshing: rotate, // and the old one stops working
		IsRemoveAccess:     true,
		IsResetRefreshTime: true,
	})
	srv := server.NewServer(server.NewConfig(), manager)
	srv.SetClientInfoHandler(server.ClientFormHandler) // credentials in the body, as the seed says
	srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, username, password string) (string, error) {
		if username == sellerName && password == sellerPassword {
			return "seller-1", nil
		}
		return "", oautherrors.ErrAccessDenied
	})
	srv.SetClientAuthorizedHandler(func(id string, grant oauth2.GrantType) (bool, error) {
		return !(id == otherClientID && grant == oauth2.Refreshing), nil
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = srv.HandleTokenRequest(w, r) // it has written the answer either way
	}))
	t.Cleanup(hs.Close)
	return &authServer{url: hs.URL + "/oauth/token", srv: srv}
}

// install is the app's installation: the password grant hands out the first
// refresh token, which the connection row then holds.
func (a *authServer) install(t *testing.T) string {
	t.Helper()
	resp, err := http.PostForm(a.url, url.Values{
		"grant_type": {"password"}, "client_id": {clientID}, "client_secret": {clientSecret},
		"username": {sellerName}, "password": {sellerPassword},
	})
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.RefreshToken)
	return out.RefreshToken
}

// accepts reports whether the server takes accessToken as a bearer token.
func (a *authServer) accepts(t *testing.T, accessToken string) bool {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+accessToken)
	ti, err := a.srv.ValidationBearerToken(r)
	return err == nil && ti.GetUserID() == "seller-1"
}

func connWith(refresh string) token.Connection {
	return token.Connection{ID: 42, IntegrationType: "42", RefreshToken: refresh,
		InputFields: []byte(`{"client_id":"` + clientID + `","client_secret":"` + clientSecret + `"}`)}
}

func TestAgainstGoOAuth2ServerWithRotation(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, true)
	p := newProvider(t, oauth2refresh.Config{TokenURL: as.url})
	rt1 := as.install(t)

	// First refresh: a new access token the server honours, a rotated
	// refresh token, and the server's 30-minute lifetime.
	tok1, err := p.Refresh(context.Background(), connWith(rt1))
	require.NoError(t, err)
	assert.True(t, as.accepts(t, tok1.AccessToken), "the server honours the new access token")
	require.NotEmpty(t, tok1.RefreshToken, "rotation: a new refresh token came back")
	assert.NotEqual(t, rt1, tok1.RefreshToken)
	assert.Equal(t, fixed.Truncate(time.Second).Add(30*time.Minute), tok1.ExpiresAt)

	// The rotated-out refresh token is refused for good: permanent.
	_, err = p.Refresh(context.Background(), connWith(rt1))
	require.Error(t, err)
	assert.True(t, token.IsPermanent(err), "a rotated-out refresh token is invalid_grant: %v", err)
	assert.Contains(t, err.Error(), "invalid_grant")
	assert.NotContains(t, err.Error(), rt1)

	// The second refresh must use the rotated token, and rotates again.
	tok2, err := p.Refresh(context.Background(), connWith(tok1.RefreshToken))
	require.NoError(t, err)
	assert.True(t, as.accepts(t, tok2.AccessToken))
	assert.False(t, as.accepts(t, tok1.AccessToken), "the server dropped the previous access token")
	require.NotEmpty(t, tok2.RefreshToken)
	assert.NotEqual(t, tok1.RefreshToken, tok2.RefreshToken)
	_, err = p.Refresh(context.Background(), connWith(tok1.RefreshToken))
	assert.True(t, token.IsPermanent(err), "the once-rotated token is now refused too: %v", err)
}

func TestAgainstGoOAuth2ServerWithoutRotation(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, false)
	p := newProvider(t, oauth2refresh.Config{TokenURL: as.url})
	rt := as.install(t)
	for i := range 3 {
		tok, err := p.Refresh(context.Background(), connWith(rt))
		require.NoError(t, err, "refresh %d with the same refresh token", i+1)
		assert.True(t, as.accepts(t, tok.AccessToken))
		assert.Empty(t, tok.RefreshToken, "no refresh token came back: the stored one is kept")
	}
}

func TestAgainstGoOAuth2ServerRefusals(t *testing.T) {
	t.Parallel()
	as := newAuthServer(t, true)
	rt := as.install(t)
	tests := []struct {
		name     string
		cfg      oauth2refresh.Config
		conn     token.Connection
		wantCode string
	}{
		{
			name:     "unknown refresh token",
			conn:     connWith("NOT-A-TOKEN-THE-SERVER-ISSUED"),
			wantCode: "invalid_grant",
		},
		{
			name: "a client the server does not allow to refresh",
			conn: token.Connection{ID: 42, RefreshToken: rt,
				InputFields: []byte(`{"client_id":"` + otherClientID + `","client_secret":"other-secret"}`)},
			wantCode: "unauthorized_client",
		},
		{
			// go-oauth2 reads forms only: the JSON option is for servers
			// that ask for it, and a server that does not refuses it.
			name:     "a JSON body to a form-only server",
			cfg:      oauth2refresh.Config{BodyFormat: oauth2refresh.FormatJSON},
			conn:     connWith(rt),
			wantCode: "unsupported_grant_type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.TokenURL = as.url
			cfg.Client = provider.NewHTTPClient(2)
			p := newProvider(t, cfg)
			_, err := p.Refresh(context.Background(), tt.conn)
			require.Error(t, err)
			assert.True(t, token.IsPermanent(err), "%v", err)
			assert.Contains(t, err.Error(), tt.wantCode)
			assert.NotContains(t, err.Error(), rt)
			assert.NotContains(t, err.Error(), clientSecret)
		})
	}
	// None of the refusals consumed the real refresh token.
	p := newProvider(t, oauth2refresh.Config{TokenURL: as.url})
	_, err := p.Refresh(context.Background(), connWith(rt))
	assert.NoError(t, err)
}
