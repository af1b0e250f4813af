package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	oauth2 "github.com/go-oauth2/oauth2/v4"
	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/deploy"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestDeployProvidersAndSeed is `make run` without the shell: the shipped
// deploy/providers.yaml (pointed at this test's sandbox) and the shipped
// seed rows, one scan over all three kinds, and every seed row refreshed by
// its own flow.
func TestDeployProvidersAndSeed(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/providers.yaml")
	require.NoError(t, err)
	b := setup(t, options{providers: func(sandboxURL string) []registry.Entry {
		entries, err := registry.Parse([]byte(strings.ReplaceAll(string(raw), "http://127.0.0.1:8089", sandboxURL)), "", os.Getenv)
		require.NoError(t, err)
		return entries
	}})
	kinds := map[string]string{}
	for _, e := range b.providers {
		kinds[e.IntegrationType] = e.Kind
	}
	require.Equal(t, map[string]string{"16": "ajio", "42": "oauth2_refresh", "43": "unicommerce"}, kinds)
	b.sandbox.SetFaults(sandbox.Faults{Rotate: true, RotationGrace: time.Minute}) // as bin/sandbox runs
	for _, st := range deploy.Seed(b.env.WMSDB, b.env.IEDB) {
		b.env.WMS.MustExec(st)
	}
	seedRT := *b.env.Get(t, 4201).RefreshToken

	results, err := b.scanner(scan.Config{}).RunOnce(context.Background())
	require.NoError(t, err)
	due := map[string]int{}
	for _, r := range results {
		due[r.IntegrationType] = r.Due
	}
	assert.Equal(t, map[string]int{"16": 2, "42": 1, "43": 1}, due, "one pass covers every configured type")

	b.startRefresher(t)
	testenv.Eventually(t, 20*time.Second, "the seed rows to be refreshed", b.settled)
	for id, owner := range map[int64]string{11: "abc@itc.com", 99: "brand@itc.com", 4201: "seller-4201", 4301: "seller-4301@sandbox.test"} {
		row := b.env.Get(t, id)
		require.NotNil(t, row.AccessToken, "connection %d", id)
		got, ok := b.sandbox.IssuedTo(*row.AccessToken)
		assert.True(t, ok, "connection %d holds a token the sandbox issued", id)
		assert.Equal(t, owner, got, "connection %d", id)
	}
	assert.Equal(t, 2, b.sandbox.Stats().ByFlow["ajio"])
	assert.Equal(t, 1, b.sandbox.Stats().ByFlow["oauth2_refresh"])
	assert.Equal(t, 1, b.sandbox.Stats().ByFlow["unicommerce"])
	assert.NotEqual(t, seedRT, *b.env.Get(t, 4201).RefreshToken, "the rotated refresh token was stored")
	assert.Empty(t, b.archived(t))
}

// TestProductionExampleParses keeps the shipped example valid.
func TestProductionExampleParses(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../deploy/providers.production.example.yaml")
	require.NoError(t, err)
	entries, err := registry.Parse(raw, "", os.Getenv)
	require.NoError(t, err)
	assert.Len(t, entries, 3)
}

// TestOAuth2AgainstGoOAuth2Server: the refresher against OAuth server
// software the project did not write (go-oauth2/oauth2 v4, in process, with
// rotation: the old refresh token is deleted when a new one is issued), over
// two consecutive refreshes.
func TestOAuth2AgainstGoOAuth2Server(t *testing.T) {
	t.Parallel()
	const clientID, clientSecret = "eshopbox-app", "go-oauth2-client-secret"
	manager := manage.NewDefaultManager()
	manager.MustTokenStorage(store.NewMemoryTokenStore())
	clients := store.NewClientStore()
	require.NoError(t, clients.Set(clientID, &models.Client{ID: clientID, Secret: clientSecret, Domain: "http://localhost"}))
	manager.MapClientStorage(clients)
	manager.SetPasswordTokenCfg(&manage.Config{AccessTokenExp: time.Hour, RefreshTokenExp: 24 * time.Hour, IsGenerateRefresh: true})
	// Access tokens of 5 minutes are due again at once under a 10-minute
	// refresh_before, so the second scan refreshes again.
	manager.SetRefreshTokenCfg(&manage.RefreshingConfig{AccessTokenExp: 5 * time.Minute, RefreshTokenExp: 24 * time.Hour,
		IsGenerateRefresh: true, IsRemoveRefreshing: true, IsRemoveAccess: true, IsResetRefreshTime: true})
	srv := server.NewServer(server.NewConfig(), manager)
	srv.SetClientInfoHandler(server.ClientFormHandler)
	srv.SetAllowedGrantType(oauth2.PasswordCredentials, oauth2.Refreshing)
	srv.SetPasswordAuthorizationHandler(func(_ context.Context, _, user, pass string) (string, error) {
		if user == "seller" && pass == "seller-pw" {
			return "seller-1", nil
		}
		return "", nil
	})
	var calls atomic.Int32
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = srv.HandleTokenRequest(w, r)
	}))
	t.Cleanup(as.Close)

	// The app's installation hands out the first refresh token.
	resp, err := http.PostForm(as.URL+"/oauth/token", url.Values{"grant_type": {"password"}, "client_id": {clientID},
		"client_secret": {clientSecret}, "username": {"seller"}, "password": {"seller-pw"}})
	require.NoError(t, err)
	var installed struct {
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&installed))
	resp.Body.Close()
	rt0 := installed.RefreshToken
	require.NotEmpty(t, rt0)

	b := setup(t, options{providers: providersYAML(t, strings.ReplaceAll(`
providers:
  - integration_type: "42"
    kind: oauth2_refresh
    token_url: AS_URL/oauth/token
    refresh_before: 10m
`, "AS_URL", as.URL))})
	b.env.Insert(t, testenv.Row{ID: 1, IntegrationType: "42", InputFields: clientFields(clientID, clientSecret),
		RefreshToken: testenv.Str(rt0)})
	b.startRefresher(t)
	honoured := func(accessToken string) bool {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.Header.Set("Authorization", "Bearer "+accessToken)
		ti, err := srv.ValidationBearerToken(r)
		return err == nil && ti.GetUserID() == "seller-1"
	}

	var stored []testenv.Stored
	for n := 1; n <= 2; n++ {
		assert.Equal(t, 1, b.scanOnce(t).Enqueued, "refresh %d", n)
		testenv.Eventually(t, 20*time.Second, "the refresh to finish", func() bool { return b.settled() && calls.Load() == int32(n+1) })
		row := b.env.Get(t, 1)
		require.NotNil(t, row.AccessToken)
		assert.True(t, honoured(*row.AccessToken), "refresh %d: the server honours the stored access token", n)
		require.NotNil(t, row.ExpiresAt)
		assert.WithinDuration(t, time.Now().Add(5*time.Minute), *row.ExpiresAt, 10*time.Second)
		stored = append(stored, row)
	}
	assert.NotEqual(t, rt0, *stored[0].RefreshToken, "the first refresh stored the rotated token")
	assert.NotEqual(t, *stored[0].RefreshToken, *stored[1].RefreshToken, "the second used it and stored its successor")
	assert.False(t, honoured(*stored[0].AccessToken), "the server dropped the first access token")
	assert.Empty(t, b.archived(t))
	assertNoSecrets(t, b, []string{clientSecret, rt0, *stored[0].RefreshToken, *stored[1].RefreshToken,
		*stored[0].AccessToken, *stored[1].AccessToken})
}
