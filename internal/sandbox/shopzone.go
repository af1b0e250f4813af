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
// faults (latency, errors, hangs...) and shapes apply as to every flow.
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

// shopzoneFlow is Shopzone's token flow, counted for the login.
var shopzoneFlow = flow{
	name:        "shopzone",
	refusal:     shopzoneFailure("ACCOUNT_LOCKED"),
	serverError: shopzoneFailure("MAINTENANCE"),
	unknown:     reply{status: http.StatusOK, body: map[string]any{"ok": true, "data": map[string]string{"status": "PENDING"}}},
}

// shopzoneFailure is Shopzone's refusal or failure code under HTTP 200.
func shopzoneFailure(code string) reply {
	return reply{status: http.StatusOK, body: map[string]any{"ok": false, "error": map[string]string{"code": code}}}
}

// readShopzone reads a Shopzone call, counted for its login.
func (s *Server) readShopzone(w http.ResponseWriter, r *http.Request) call {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	formErr := r.ParseForm()
	login, secret := r.PostForm.Get("login"), r.PostForm.Get("secret")
	wellFormed := formErr == nil && r.Header.Get("X-Api-Version") == "2" && r.PostForm.Get("client") == "eshopbox"
	return call{flow: &shopzoneFlow, seller: login, answer: func() reply {
		switch {
		case !wellFormed:
			return reply{status: http.StatusBadRequest, body: map[string]any{"ok": false, "error": map[string]string{"code": "BAD_REQUEST"}}}
		case !s.accepts(login, secret):
			return rejected(shopzoneFailure("BAD_LOGIN"))
		}
		secs := s.faults.ShopzoneExpiresIn
		if secs <= 0 {
			secs = DefaultShopzoneExpiresIn
		}
		access := randomToken("sz-at-")
		return reply{status: http.StatusOK, token: access, body: map[string]any{"ok": true, "data": map[string]any{"auth": map[string]string{
			"token":     access,
			"refresh":   randomToken("sz-rt-"),
			"expiresAt": time.Now().Add(time.Duration(secs) * time.Second).UTC().Format(time.RFC3339),
		}}}}
	}}
}
