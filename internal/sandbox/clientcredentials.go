package sandbox

import "net/http"

// clientCredentialsFlow is the RFC 6749 §4.4 client credentials grant on
// POST /oauth/token: any registered client (body or HTTP Basic) gets an
// access token for itself (Calls, ShapeBy and IssuedTo know it by its client
// id), with expires_in as for the refresh grant (OAuthExpiresInBy keyed by
// client id) and no refresh token. Its shapes are the refresh grant's.
var clientCredentialsFlow = named("oauth2_client_credentials", oauthWords)

// clientCredentialsCall is a call of the client credentials grant, counted
// for its client.
func (s *Server) clientCredentialsCall(req oauthRequest) call {
	return call{flow: &clientCredentialsFlow, seller: req.ClientID, answer: func() reply {
		if !s.clientAuthenticated(req) || s.faults.RejectAll {
			return rejected(oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed"))
		}
		access := randomToken("cc-at-")
		return reply{status: http.StatusOK, header: noStore, token: access, body: map[string]any{
			"access_token": access, "token_type": "Bearer", "expires_in": s.expiresIn(req.ClientID),
		}}
	}}
}
