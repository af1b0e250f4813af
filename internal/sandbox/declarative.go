package sandbox

import (
	"net/http"
	"time"
)

// ShopzonePath is the login of Shopzone, the sandbox's marketplace whose
// flow exists only as a declarative http_token entry (no Go package): a
// form POST of login and secret with the header X-Api-Version: 2, answered
// by {"ok":true,"data":{"auth":{"token","refresh","expiresAt"}}} with an
// absolute RFC 3339 expiry, {"ok":false,"error":{"code":"BAD_LOGIN"}} for
// rejected credentials and {"ok":false,"error":{"code":"MAINTENANCE"}}
// (both under HTTP 200) when Faults.Shape (or ShapeBy the login) is
// ShapeServerErrorIn200; ShapeRefusalIn200 answers ACCOUNT_LOCKED. The other
// faults (latency, errors, hangs...) apply as to every flow.
const ShopzonePath = "/shopzone/v2/login"

// DefaultShopzoneExpiresIn is the Shopzone tokens' lifetime in seconds
// unless Faults.ShopzoneExpiresIn says otherwise.
const DefaultShopzoneExpiresIn = 3600

// ShopzoneEntry is the http_token entry of Shopzone, BASE_URL standing for
// the sandbox's URL: the demo, the tests and docs/adding-a-marketplace.md use
// it.
const ShopzoneEntry = `  - integration_type: "61"
    kind: http_token
    name: shopzone
    base_url: BASE_URL
    refresh_before: 10m
    request:
      method: POST
      path: /shopzone/v2/login
      body: form
      fields:
        login: {input: username}
        secret: {input: password}
        client: {const: eshopbox}
      headers:
        X-Api-Version: "2"
    response:
      success: {path: ok, equals: true}
      access_token: data.auth.token
      refresh_token: data.auth.refresh
      expiry: {expires_at: data.auth.expiresAt, layout: RFC3339}
      rejected:
        - {path: error.code, equals: [BAD_LOGIN, ACCOUNT_LOCKED]}
      server_failure:
        - {path: error.code, equals: [MAINTENANCE]}
`

func (s *Server) shopzone(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	formErr := r.ParseForm()
	login := r.PostForm.Get("login")
	defer s.inFlight()()
	if !s.begin(w, r, "shopzone", login) {
		return
	}
	fail := func(code string) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": map[string]string{"code": code}})
	}
	switch s.shapeFor(login) {
	case ShapeServerErrorIn200:
		fail("MAINTENANCE")
		return
	case ShapeRefusalIn200:
		fail("ACCOUNT_LOCKED")
		return
	}
	switch {
	case formErr != nil || r.Header.Get("X-Api-Version") != "2" || r.PostForm.Get("client") != "eshopbox":
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": map[string]string{"code": "BAD_REQUEST"}})
		return
	case !s.accepts(login, r.PostForm.Get("secret")):
		s.reject()
		fail("BAD_LOGIN")
		return
	}
	s.mu.Lock()
	secs := s.faults.ShopzoneExpiresIn
	s.mu.Unlock()
	if secs <= 0 {
		secs = DefaultShopzoneExpiresIn
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "data": map[string]any{"auth": map[string]string{
		"token":     s.issue("sz-at-", login),
		"refresh":   randomToken("sz-rt-"),
		"expiresAt": time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339),
	}}})
}

// clientCredentials is the RFC 6749 §4.4 client credentials grant on
// /oauth/token: any registered client (body or HTTP Basic) gets an access
// token for itself (Calls and IssuedTo know it by its client id), with
// expires_in as for the refresh grant (OAuthExpiresInBy keyed by client id)
// and no refresh token.
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request, req oauthRequest) {
	if !s.begin(w, r, "oauth2_client_credentials", req.ClientID) {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	s.mu.Lock()
	defer s.mu.Unlock()
	secret, known := s.clients[req.ClientID]
	if req.ClientID == "" || !known || secret != req.ClientSecret || s.faults.RejectAll {
		s.stats.Rejected++
		w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "client authentication failed"})
		return
	}
	access := randomToken("cc-at-")
	s.issued[access] = req.ClientID
	s.stats.Issued++
	expiresIn := s.faults.OAuthExpiresIn
	if by, ok := s.faults.OAuthExpiresInBy[req.ClientID]; ok {
		expiresIn = by
	}
	if expiresIn <= 0 {
		expiresIn = DefaultOAuthExpiresIn
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": access, "token_type": "Bearer", "expires_in": expiresIn})
}
