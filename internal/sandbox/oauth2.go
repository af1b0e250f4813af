package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultOAuthExpiresIn is the OAuth access tokens' lifetime in seconds
// unless Faults.OAuthExpiresIn says otherwise.
const DefaultOAuthExpiresIn = 3600

// The OAuth client the sandbox knows from the start; AddClient registers more.
const (
	DefaultClientID     = "sandbox-client"
	DefaultClientSecret = "sandbox-client-secret"
)

// GeneratedRefreshPrefix starts the refresh tokens made by RefreshToken.
const GeneratedRefreshPrefix = "sbx-rt-"

// oauthWords are both OAuth grants' words for the shapes that are not a
// token.
var oauthWords = flow{
	refusal:     reply{status: http.StatusOK, body: map[string]any{"error": "account_suspended"}},
	serverError: reply{status: http.StatusOK, body: map[string]any{"error": "temporarily_unavailable"}},
	unknown:     reply{status: http.StatusOK, body: map[string]any{"token_type": "Bearer", "scope": "orders"}},
}

// oauth2RefreshFlow is the RFC 6749 §6 refresh_token grant on POST
// /oauth/token, counted for the refresh token's subject.
var oauth2RefreshFlow = named("oauth2_refresh", oauthWords)

// named is a flow of name with the words of words.
func named(name string, words flow) flow {
	words.name = name
	return words
}

// noStore is the header of every token endpoint answer of OAuth (RFC 6749
// §5.1).
var noStore = map[string]string{"Cache-Control": "no-store"}

// RefreshToken is a refresh token the sandbox accepts for subject with the
// default client without registering it, so tests, seed rows and benchmarks
// can make any number of OAuth connections. Once used it follows the same
// rules as an issued one (rotation, grace).
func RefreshToken(subject string) string { return signedRefresh(subject) }

// signedRefresh makes a refresh token that carries its own proof: the
// sandbox's issued tokens are made the same way, so a restarted sandbox
// still accepts the rotated token a database holds, as a real server that
// keeps its tokens would. body is the subject, or subject~nonce.
func signedRefresh(body string) string {
	sum := sha256.Sum256([]byte("sandbox-refresh:" + body))
	return GeneratedRefreshPrefix + body + "." + hex.EncodeToString(sum[:8])
}

// signedSubject returns the subject of a token made by signedRefresh.
func signedSubject(tok string) (string, bool) {
	rest, ok := strings.CutPrefix(tok, GeneratedRefreshPrefix)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i <= 0 || signedRefresh(rest[:i]) != tok {
		return "", false
	}
	subject, _, _ := strings.Cut(rest[:i], "~")
	return subject, true
}

// grant is what an OAuth refresh token stands for.
type grant struct {
	clientID string
	subject  string
	// until is when a rotated-away token stops being accepted; zero while
	// the token is current.
	until time.Time
	// revoked is set when the token's family was revoked for reuse.
	revoked bool
}

// AddClient registers an OAuth client.
func (s *Server) AddClient(clientID, clientSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[clientID] = clientSecret
}

// AddRefreshToken registers a refresh token of clientID for subject (the
// seller it stands for: Calls and IssuedTo use it).
func (s *Server) AddRefreshToken(clientID, subject, refreshToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.grants[refreshToken] = &grant{clientID: clientID, subject: subject}
}

// RefreshTokenValid reports whether the OAuth flow would accept
// refreshToken now (with its client).
func (s *Server) RefreshTokenValid(refreshToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.lookup(refreshToken)
	return g != nil && s.current(g)
}

// oauthRequest is a token request's parameters, from a form or JSON body.
type oauthRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
}

// readOAuthToken reads a call of POST /oauth/token: the client credentials
// grant, or else the refresh_token grant (which refuses a request it
// cannot read or of another grant type).
func (s *Server) readOAuthToken(w http.ResponseWriter, r *http.Request) call {
	req, ok := readOAuthRequest(w, r)
	if ok && req.GrantType == "client_credentials" {
		return s.clientCredentialsCall(req)
	}
	return s.refreshCall(req, ok)
}

func readOAuthRequest(w http.ResponseWriter, r *http.Request) (oauthRequest, bool) {
	var req oauthRequest
	r.Body = http.MaxBytesReader(w, r.Body, 1<<16)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return req, false
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return req, false
		}
		req = oauthRequest{
			GrantType:    r.PostForm.Get("grant_type"),
			ClientID:     r.PostForm.Get("client_id"),
			ClientSecret: r.PostForm.Get("client_secret"),
			RefreshToken: r.PostForm.Get("refresh_token"),
		}
	}
	// RFC 6749 §2.3.1: clients may authenticate with HTTP Basic instead.
	if id, secret, ok := r.BasicAuth(); ok {
		uid, err1 := url.QueryUnescape(id)
		usecret, err2 := url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || req.ClientID != "" && req.ClientID != uid {
			return req, false
		}
		req.ClientID, req.ClientSecret = uid, usecret
	}
	return req, true
}

// refreshCall is a call of the refresh_token grant, counted for the refresh
// token's subject; ok is false when the request could not be read.
func (s *Server) refreshCall(req oauthRequest, ok bool) call {
	s.mu.Lock()
	subject := ""
	if g := s.lookup(req.RefreshToken); g != nil {
		subject = g.subject
	}
	s.mu.Unlock()
	return call{flow: &oauth2RefreshFlow, seller: subject, answer: func() reply {
		switch {
		case !ok:
			return oauthError(http.StatusBadRequest, "invalid_request", "the body is not a valid form or JSON object")
		case req.GrantType != "refresh_token":
			return oauthError(http.StatusBadRequest, "unsupported_grant_type", "only refresh_token is supported")
		case req.RefreshToken == "":
			return oauthError(http.StatusBadRequest, "invalid_request", "refresh_token is required")
		}
		return s.refreshGrant(req)
	}}
}

// refreshGrant answers a well-formed refresh_token grant. The caller holds
// s.mu.
func (s *Server) refreshGrant(req oauthRequest) reply {
	switch {
	case !s.clientAuthenticated(req):
		return rejected(oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed"))
	case s.faults.RejectAll:
		return rejected(oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token was revoked"))
	}
	g := s.lookup(req.RefreshToken)
	if why := s.refuseGrant(g, req.ClientID); why != "" {
		return rejected(oauthError(http.StatusBadRequest, "invalid_grant", why))
	}
	// Remember a signed token once used, so rotation can retire it.
	s.grants[req.RefreshToken] = g
	access := randomToken("oauth-at-")
	out := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   s.expiresIn(g.subject),
		"scope":        "orders inventory",
	}
	if s.faults.Rotate {
		out["refresh_token"] = s.rotate(g)
	}
	return reply{status: http.StatusOK, header: noStore, token: access, body: out}
}

// refuseGrant says why the grant of a refresh token presented by clientID
// is refused, "" when it is not. A rotated-away token past its grace
// revokes its family under ReuseDetection. The caller holds s.mu.
func (s *Server) refuseGrant(g *grant, clientID string) string {
	switch {
	case g == nil:
		return "unknown refresh token"
	case g.clientID != clientID:
		return "the refresh token was issued to another client"
	case g.revoked:
		return "the refresh token was revoked"
	case !s.current(g):
		if s.faults.ReuseDetection {
			s.revokeFamily(g.subject)
		}
		return "the refresh token was rotated and its grace period is over"
	}
	return ""
}

// rotate issues the successor of g's refresh token and starts g's grace
// (once). The caller holds s.mu.
func (s *Server) rotate(g *grant) string {
	next := signedRefresh(g.subject + "~" + randomToken(""))
	s.grants[next] = &grant{clientID: g.clientID, subject: g.subject}
	if g.until.IsZero() {
		g.until = s.now().Add(s.faults.RotationGrace)
	}
	return next
}

// clientAuthenticated reports whether a request's client is registered with
// the secret it presented. The caller holds s.mu.
func (s *Server) clientAuthenticated(req oauthRequest) bool {
	secret, known := s.clients[req.ClientID]
	return req.ClientID != "" && known && secret == req.ClientSecret
}

// expiresIn is the expires_in of an OAuth access token for key (a subject
// or a client id). The caller holds s.mu.
func (s *Server) expiresIn(key string) int {
	expiresIn := s.faults.OAuthExpiresIn
	if by, ok := s.faults.OAuthExpiresInBy[key]; ok {
		expiresIn = by
	}
	if expiresIn <= 0 {
		expiresIn = DefaultOAuthExpiresIn
	}
	return expiresIn
}

// oauthError is an RFC 6749 §5.2 error answer.
func oauthError(status int, code, description string) reply {
	header := noStore
	if status == http.StatusUnauthorized {
		header = map[string]string{"Cache-Control": "no-store", "WWW-Authenticate": `Basic realm="sandbox"`}
	}
	return reply{status: status, header: header, body: map[string]any{"error": code, "error_description": description}}
}

// revokeFamily revokes every refresh token and access token of subject: a
// reused refresh token means one of them leaked (RFC 9700 §4.14.2). The
// caller holds s.mu.
func (s *Server) revokeFamily(subject string) {
	s.stats.FamiliesRevoked++
	for _, g := range s.grants {
		if g.subject == subject {
			g.revoked = true
		}
	}
	for tok, owner := range s.issued {
		if owner == subject {
			delete(s.issued, tok)
		}
	}
}

// lookup returns the grant of a refresh token, registered, issued or
// generated; nil when there is none. The caller holds s.mu.
func (s *Server) lookup(refreshToken string) *grant {
	if refreshToken == "" {
		return nil
	}
	if g, ok := s.grants[refreshToken]; ok {
		return g
	}
	if subject, ok := signedSubject(refreshToken); ok {
		return &grant{clientID: DefaultClientID, subject: subject}
	}
	return nil
}

// current reports whether a grant is still accepted: never rotated, or
// rotated less than its grace ago. The caller holds s.mu.
func (s *Server) current(g *grant) bool {
	return !g.revoked && (g.until.IsZero() || s.now().Before(g.until))
}
