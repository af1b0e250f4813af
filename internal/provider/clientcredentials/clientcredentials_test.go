package clientcredentials_test

// The client against an OAuth 2.0 server the project did not write:
// github.com/go-oauth2/oauth2/v4, in process (as oauth2_refresh is tested),
// with client authentication in the body and with HTTP Basic.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	oautherrors "github.com/go-oauth2/oauth2/v4/errors"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/clientcredentials"
	"github.com/eshopbox/token-refresher/internal/token"
)

const (
	clientID     = "eshopbox-app"
	clientSecret = "cc-Secret/with+chars"
)

type authServer struct {
	url  string
	srv  *server.Server
	mu   sync.Mutex
	form []url.Values
}

func newAuthServer(t *testing.T, basic bool) *authServer {
	t.Helper()
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	require.NoError(t, clients.Set(clientID, &models.Client{ID: clientID, Secret: clientSecret, Domain: "http://localhost"}))
	manager.MapClientStorage(clients)
	manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: 45 * time.Minute})
	srv := server.NewServer(server.NewConfig(), manager)
	if basic {
		// RFC 6749 §2.3.1 form-encodes id and secret before Basic (as
		// golang.org/x/oauth2 does, and this client); go-oauth2's
		// ClientBasicHandler does not decode them, so a secret with '/' or
		// '+' would fail against it unwrapped.
		srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
			id, secret, err := server.ClientBasicHandler(r)
			if err != nil {
				return "", "", err
			}
			uid, err1 := url.QueryUnescape(id)
			usecret, err2 := url.QueryUnescape(secret)
			if err1 != nil || err2 != nil {
				return "", "", oautherrors.ErrInvalidClient
			}
			return uid, usecret, nil
		})
	} else {
		srv.SetClientInfoHandler(server.ClientFormHandler)
	}
	as := &authServer{srv: srv}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		as.mu.Lock()
		as.form = append(as.form, r.PostForm)
		as.mu.Unlock()
		_ = srv.HandleTokenRequest(w, r)
	}))
	t.Cleanup(hs.Close)
	as.url = hs.URL + "/oauth/token"
	return as
}

func (a *authServer) honoured(accessToken string) (string, bool) {
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+accessToken)
	ti, err := a.srv.ValidationBearerToken(r)
	if err != nil {
		return "", false
	}
	return ti.GetScope(), ti.GetClientID() == clientID
}

func TestAgainstGoOAuth2Server(t *testing.T) {
	t.Parallel()
	for _, auth := range []string{clientcredentials.AuthBody, clientcredentials.AuthBasic} {
		t.Run(auth, func(t *testing.T) {
			t.Parallel()
			as := newAuthServer(t, auth == clientcredentials.AuthBasic)
			now := time.Date(2026, 12, 1, 10, 0, 0, 600_000_000, time.UTC)
			p, err := clientcredentials.New(clientcredentials.Config{TokenURL: as.url, ClientID: clientID, ClientAuth: auth,
				Scope: "orders", Audience: "https://api.example.com", ExtraParams: map[string]string{"resource": "inventory"},
				Client: provider.NewHTTPClient(2), Now: func() time.Time { return now }})
			require.NoError(t, err)

			// The secret from inputFields, the id from the entry.
			conn := token.Connection{ID: 1, InputFields: []byte(`{"client_secret":"` + clientSecret + `"}`), RefreshToken: "ignored"}
			first, err := p.Refresh(context.Background(), conn)
			require.NoError(t, err)
			second, err := p.Refresh(context.Background(), conn)
			require.NoError(t, err)
			assert.NotEqual(t, first.AccessToken, second.AccessToken, "every refresh is a new grant")
			assert.Empty(t, first.RefreshToken, "the client credentials grant issues no refresh token")
			assert.Equal(t, now.Truncate(time.Second).Add(45*time.Minute), second.ExpiresAt, "expiry is obtained-at + expires_in")
			scope, ok := as.honoured(second.AccessToken)
			assert.True(t, ok, "the server honours the token")
			assert.Equal(t, "orders", scope)

			as.mu.Lock()
			form := as.form[0]
			as.mu.Unlock()
			assert.Equal(t, "client_credentials", form.Get("grant_type"))
			assert.Equal(t, "https://api.example.com", form.Get("audience"))
			assert.Equal(t, "inventory", form.Get("resource"))
			assert.Empty(t, form.Get("refresh_token"), "no refresh token is sent")
			if auth == clientcredentials.AuthBasic {
				assert.Empty(t, form.Get("client_secret"), "Basic keeps the secret out of the body")
			} else {
				assert.Equal(t, clientSecret, form.Get("client_secret"))
			}

			_, err = p.Refresh(context.Background(), token.Connection{ID: 2, InputFields: []byte(`{"client_secret":"wrong-secret"}`)})
			require.Error(t, err)
			assert.True(t, token.IsPermanent(err), "a rejected client is permanent: %v", err)
			assert.Contains(t, err.Error(), "refused the client_credentials grant: invalid_client")
			assert.NotContains(t, err.Error(), "wrong-secret")
			assert.NotContains(t, err.Error(), clientSecret)
		})
	}
}

// TestVerdictsAreOAuth2Refresh: the answers oauth2_refresh places, placed
// the same (the two kinds share oauth2refresh.Verdicts).
func TestVerdictsAreOAuth2Refresh(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		status int
		body   string
		want   string
	}{
		{400, `{"error":"invalid_client"}`, "permanent"},
		{200, `{"error":"account_suspended"}`, "permanent"},
		{200, `{"error":"temporarily_unavailable"}`, "transient"},
		{503, `{}`, "transient"},
		{200, `{"access_token":"A"}`, "unusable"},
		{200, `{"token_type":"bearer"}`, "unusable"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
		}))
		p, err := clientcredentials.New(clientcredentials.Config{TokenURL: srv.URL, ClientID: "a", ClientSecret: "b", Client: provider.NewHTTPClient(2)})
		require.NoError(t, err)
		_, err = p.Refresh(context.Background(), token.Connection{ID: 1})
		srv.Close()
		var f *token.Failure
		require.ErrorAs(t, err, &f)
		assert.Equal(t, c.want, f.Class.String(), "%d %s", c.status, c.body)
	}
	_, err := clientcredentials.New(clientcredentials.Config{TokenURL: "https://x.example/t", ExtraParams: map[string]string{"client_secret": "x"},
		Client: provider.NewHTTPClient(2)})
	assert.Error(t, err, "extra_params cannot set the client's parameters")
}
