// Package sandbox is the project's own marketplace: a real HTTP server that
// speaks the three token flows the refresher calls (Ajio, Unicommerce and the
// OAuth2 refresh_token grant) on one base URL, with switches for latency,
// errors, HTML error pages, garbage, hangs, 429s, rejected credentials and
// refresh-token rotation. Tests, the demo and the benchmarks talk to it
// instead of the marketplaces.
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults are the switches. Rates are probabilities in [0,1], drawn per call
// in the order hang, slow, 429, error, HTML, garbage.
type Faults struct {
	Latency  time.Duration `json:"latency"`
	HangRate float64       `json:"hang_rate"`
	// SlowRate answers a share of calls normally but only after
	// SlowLatency: a caller with a shorter deadline times out while the
	// token is issued anyway.
	SlowRate          float64       `json:"slow_rate"`
	SlowLatency       time.Duration `json:"slow_latency"`
	RateLimitRate     float64       `json:"rate_limit_rate"`
	RetryAfterSeconds int           `json:"retry_after_seconds"`
	ErrorRate         float64       `json:"error_rate"`
	HTMLRate          float64       `json:"html_rate"`
	GarbageRate       float64       `json:"garbage_rate"`
	// RejectAll rejects every credential, as a marketplace that changed
	// its password policy would (OAuth: invalid_grant).
	RejectAll bool `json:"reject_all"`
	// Rotate makes the OAuth flow issue a new refresh token with every
	// access token. The one presented stays valid for RotationGrace after
	// it was rotated away, then is refused with invalid_grant.
	Rotate        bool          `json:"rotate"`
	RotationGrace time.Duration `json:"rotation_grace"`
	// OAuthExpiresIn is the expires_in of OAuth answers, in seconds
	// (default 3600).
	OAuthExpiresIn int `json:"oauth_expires_in"`
	// ReuseDetection makes the OAuth flow treat a rotated-away refresh
	// token presented after its grace as a stolen one (RFC 9700 §4.14.2,
	// as ory/fosite does): the whole token family of its subject is
	// revoked, the live refresh token and the access tokens included.
	ReuseDetection bool `json:"reuse_detection"`
	// OAuthExpiresInBy sets OAuthExpiresIn per subject (the seller a
	// refresh token stands for): a marketplace issuing short tokens to
	// some sellers.
	OAuthExpiresInBy map[string]int `json:"oauth_expires_in_by,omitempty"`
	// Shape makes every flow answer in one of the shapes real
	// marketplaces use (the Shape… constants); "" answers normally.
	Shape string `json:"shape,omitempty"`
	// ShapeBy sets the shape per seller (username; OAuth: the refresh
	// token's subject), over Shape.
	ShapeBy map[string]string `json:"shape_by,omitempty"`
	// ShopzoneExpiresIn is how far ahead the Shopzone flow's absolute
	// expiresAt lies, in seconds (default 3600).
	ShopzoneExpiresIn int `json:"shopzone_expires_in,omitempty"`
}

// The answer shapes of Faults.Shape. Success variants apply to accepted
// credentials only; the others answer every call.
const (
	// ShapeForm: the OAuth token answer is form-encoded (GitHub style).
	ShapeForm = "form"
	// ShapeTextPlain: the token answer is JSON labelled text/plain.
	ShapeTextPlain = "text_plain"
	// ShapeExpiresInString: OAuth expires_in is a string ("3600").
	ShapeExpiresInString = "expires_in_string"
	// ShapeAbsurdExpiresIn: OAuth expires_in is 10¹² seconds.
	ShapeAbsurdExpiresIn = "absurd_expires_in"
	// ShapeNoExpiresIn: the OAuth answer has no expires_in.
	ShapeNoExpiresIn = "no_expires_in"
	// ShapeRefusalIn200: an explicit refusal under HTTP 200: OAuth
	// {"error":"account_suspended"} (a code RFC 6749 does not list), Ajio
	// success:false without statusCode, Unicommerce INVALID_CREDENTIALS.
	ShapeRefusalIn200 = "refusal_in_200"
	// ShapeServerErrorIn200: a server-side failure under HTTP 200: Ajio
	// success:false with statusCode 503 ("please retry"), OAuth
	// temporarily_unavailable; Unicommerce has no such word and answers
	// HTTP 503.
	ShapeServerErrorIn200 = "server_error_in_200"
	// ShapeUnknown: a 2xx JSON object the product cannot place: Ajio
	// without success, OAuth without access_token or error, Unicommerce
	// status PENDING.
	ShapeUnknown = "unknown"
	// ShapeTruncated: HTTP 200, JSON cut short.
	ShapeTruncated = "truncated"
	// ShapeEmpty: HTTP 200 with an empty body.
	ShapeEmpty = "empty"
	// ShapeRedirect: HTTP 302 to another path.
	ShapeRedirect = "redirect"
	// ShapeDrop: the connection is closed before an answer.
	ShapeDrop = "drop"
	// ShapeHuge: HTTP 200 with a body over 1 MiB.
	ShapeHuge = "huge"
)

// Shapes lists every shape.
var Shapes = []string{ShapeForm, ShapeTextPlain, ShapeExpiresInString, ShapeAbsurdExpiresIn, ShapeNoExpiresIn,
	ShapeRefusalIn200, ShapeServerErrorIn200, ShapeUnknown, ShapeTruncated, ShapeEmpty, ShapeRedirect, ShapeDrop, ShapeHuge}

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

// Password is the password the sandbox accepts for a username ending in
// GeneratedDomain, so tests and benchmarks can make any number of valid
// sellers without registering them.
func Password(username string) string {
	sum := sha256.Sum256([]byte("sandbox-seller:" + username))
	return "pw-" + hex.EncodeToString(sum[:6])
}

// GeneratedDomain is the domain of generated sellers (see Password).
const GeneratedDomain = "@sandbox.test"

// SeedSellers are the two credential pairs of the Ajio seed document.
var SeedSellers = map[string]string{
	"abc@itc.com":   "abc123",
	"brand@itc.com": "pqr123",
}

// Stats is what the sandbox saw.
type Stats struct {
	Calls    int            `json:"calls"`
	Issued   int            `json:"issued"`
	Rejected int            `json:"rejected"`
	Faulted  int            `json:"faulted"`
	ByFlow   map[string]int `json:"by_flow"`
	// PeakPerSecond is the most calls started within one wall-clock second.
	PeakPerSecond int `json:"peak_per_second"`
	// PeakInAnySecond is the most calls started within any one-second
	// window (sliding; at least PeakPerSecond).
	PeakInAnySecond int `json:"peak_in_any_second"`
	// InFlight is how many calls are being answered now.
	InFlight int `json:"in_flight"`
	// PeakInFlightPerUser is the most calls of one username (OAuth: one
	// subject) answered at the same moment: 1 when nothing ever called
	// twice at once for one seller.
	PeakInFlightPerUser int `json:"peak_in_flight_per_user"`
	// FamiliesRevoked counts OAuth token families revoked for reuse
	// (Faults.ReuseDetection).
	FamiliesRevoked int `json:"families_revoked"`
}

// Server is the sandbox marketplace.
type Server struct {
	mu      sync.Mutex
	sellers map[string]string
	clients map[string]string // OAuth client id → secret
	grants  map[string]*grant // OAuth refresh token → what it grants
	faults  Faults
	calls   map[string]int         // by username (OAuth: subject)
	userIn  map[string]int         // calls being answered, by username
	gens    map[string]*Generation // latest issuance by username
	seq     map[string]int         // access token → its issuance number for its username
	issued  map[string]string
	stats   Stats
	second  int64
	inSec   int
	now     func() time.Time // the clock of the rotation grace
	recent  []time.Time      // call starts of the last second, oldest first
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

// New returns a sandbox knowing the seed sellers and the default OAuth
// client.
func New() *Server {
	s := &Server{
		sellers: map[string]string{},
		clients: map[string]string{DefaultClientID: DefaultClientSecret},
		grants:  map[string]*grant{},
		calls:   map[string]int{},
		userIn:  map[string]int{},
		gens:    map[string]*Generation{},
		seq:     map[string]int{},
		issued:  map[string]string{},
		stats:   Stats{ByFlow: map[string]int{}},
		now:     time.Now,
	}
	for u, p := range SeedSellers {
		s.sellers[u] = p
	}
	return s
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

// AddSeller registers a credential pair.
func (s *Server) AddSeller(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sellers[username] = password
}

// SetFaults replaces the switches.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// Faults returns the switches.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// CallsByUser returns how many token calls each username made.
func (s *Server) CallsByUser() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for u, n := range s.calls {
		out[u] = n
	}
	return out
}

// Calls returns how many token calls a username made.
func (s *Server) Calls(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[username]
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByFlow = make(map[string]int, len(s.stats.ByFlow))
	for k, v := range s.stats.ByFlow {
		st.ByFlow[k] = v
	}
	return st
}

// IssuedTo returns the username an access token was issued to, if any.
func (s *Server) IssuedTo(accessToken string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.issued[accessToken]
	return u, ok
}

// Route is one endpoint the sandbox serves, as its root (GET /) lists it.
type Route struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	What   string `json:"what"`
}

// Index is the sandbox's answer to GET /: what it is and what it serves, so
// the URL a banner prints answers something useful. TestIndexRoutesAreServed
// calls each route.
var Index = struct {
	Name    string  `json:"name"`
	Flows   []Route `json:"flows"`
	Control []Route `json:"control"`
}{
	Name: "token-refresher marketplace sandbox: the token APIs of the marketplaces the refresher calls, with fault switches",
	Flows: []Route{
		{"POST", "/authToken", "ajio: JSON {username,password}, answers {success,statusCode,result:{accessToken,refreshToken}}"},
		{"GET", "/authToken", "unicommerce: ?username=..&password=.., answers {status,accessToken}"},
		{"POST", "/oauth/token", "oauth2_refresh (grant_type=refresh_token, rotation) and oauth2_client_credentials; form or JSON, or HTTP Basic"},
		{"POST", ShopzonePath, "shopzone, an http_token marketplace: form {login,secret,client}, answers {ok,data:{auth:{token,refresh,expiresAt}}}"},
	},
	Control: []Route{
		{"GET", "/_sandbox/faults", "the fault switches (PUT replaces them: latency, error_rate, reject_all, shape, ...)"},
		{"GET", "/_sandbox/stats", "call counters"},
		{"GET", "/_sandbox/calls", "token calls by seller"},
		{"POST", "/_sandbox/sellers", "register a seller {username,password}"},
		{"POST", "/_sandbox/oauth/clients", "register an OAuth client {client_id,client_secret}"},
		{"POST", "/_sandbox/oauth/refresh_tokens", "register a refresh token {client_id,subject,refresh_token}"},
	},
}

// Handler serves the flows and the control endpoints:
//
//	GET  /                   Index: what the sandbox serves (JSON)
//	POST /authToken          Ajio: JSON {username,password}
//	GET  /authToken          Unicommerce: ?username=..&password=..
//	POST /oauth/token        OAuth2 refresh_token grant, form or JSON body
//	GET  /_sandbox/faults    the switches; PUT replaces them (JSON)
//	GET  /_sandbox/stats     the counters
//	GET  /_sandbox/calls     token calls by username
//	POST /_sandbox/owners    JSON array of access tokens → {token: username} of those it issued
//	POST /_sandbox/generations  JSON array of access tokens → Generations (issuance order)
//	POST /_sandbox/sellers   register {username,password}
//	POST /_sandbox/oauth/clients         register {client_id,client_secret}
//	POST /_sandbox/oauth/refresh_tokens  register {client_id,subject,refresh_token}
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, Index)
	})
	mux.HandleFunc("POST /authToken", s.ajio)
	mux.HandleFunc("GET /authToken", s.unicommerce)
	mux.HandleFunc("POST /oauth/token", s.oauthToken)
	mux.HandleFunc("POST "+ShopzonePath, s.shopzone)
	mux.HandleFunc("POST /_sandbox/oauth/clients", func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&c); err != nil || c.ClientID == "" || c.ClientSecret == "" {
			http.Error(w, "want {client_id,client_secret}", http.StatusBadRequest)
			return
		}
		s.AddClient(c.ClientID, c.ClientSecret)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sandbox/oauth/refresh_tokens", func(w http.ResponseWriter, r *http.Request) {
		var g struct {
			ClientID     string `json:"client_id"`
			Subject      string `json:"subject"`
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&g); err != nil || g.ClientID == "" || g.RefreshToken == "" {
			http.Error(w, "want {client_id,subject,refresh_token}", http.StatusBadRequest)
			return
		}
		s.AddRefreshToken(g.ClientID, g.Subject, g.RefreshToken)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Faults())
	})
	mux.HandleFunc("PUT /_sandbox/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&f); err != nil {
			http.Error(w, "bad faults: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("GET /_sandbox/stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_sandbox/calls", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.CallsByUser())
	})
	mux.HandleFunc("POST /_sandbox/owners", func(w http.ResponseWriter, r *http.Request) {
		var tokens []string
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<24)).Decode(&tokens); err != nil {
			http.Error(w, "want a JSON array of access tokens", http.StatusBadRequest)
			return
		}
		owners := make(map[string]string, len(tokens))
		for _, t := range tokens {
			if u, ok := s.IssuedTo(t); ok {
				owners[t] = u
			}
		}
		writeJSON(w, http.StatusOK, owners)
	})
	mux.HandleFunc("POST /_sandbox/generations", func(w http.ResponseWriter, r *http.Request) {
		var tokens []string
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<24)).Decode(&tokens); err != nil {
			http.Error(w, "want a JSON array of access tokens", http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, s.GenerationsOf(tokens))
	})
	mux.HandleFunc("POST /_sandbox/sellers", func(w http.ResponseWriter, r *http.Request) {
		var c struct{ Username, Password string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&c); err != nil || c.Username == "" || c.Password == "" {
			http.Error(w, "want {username,password}", http.StatusBadRequest)
			return
		}
		s.AddSeller(c.Username, c.Password)
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// begin counts a call and applies latency and faults. It returns false when
// a fault answered the call.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, flow, username string) bool {
	s.mu.Lock()
	s.stats.Calls++
	s.stats.ByFlow[flow]++
	if username != "" {
		s.calls[username]++
		s.userIn[username]++
		s.stats.PeakInFlightPerUser = max(s.stats.PeakInFlightPerUser, s.userIn[username])
		// The request's context ends when its handler returns: the call
		// is answered (or abandoned) then.
		context.AfterFunc(r.Context(), func() {
			s.mu.Lock()
			s.userIn[username]--
			s.mu.Unlock()
		})
	}
	now := time.Now().Unix()
	if now != s.second {
		s.second, s.inSec = now, 0
	}
	s.inSec++
	s.stats.PeakPerSecond = max(s.stats.PeakPerSecond, s.inSec)
	start := time.Now()
	drop := 0
	for drop < len(s.recent) && start.Sub(s.recent[drop]) >= time.Second {
		drop++
	}
	s.recent = append(s.recent[drop:], start)
	s.stats.PeakInAnySecond = max(s.stats.PeakInAnySecond, len(s.recent))
	f := s.faults
	s.mu.Unlock()

	if f.Latency > 0 {
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return false
		}
	}
	fault := func() { s.mu.Lock(); s.stats.Faulted++; s.mu.Unlock() }
	switch {
	case hit(f.HangRate):
		fault()
		// Hang until the caller gives up (bounded, so a test run ends).
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Minute):
		}
		return false
	case hit(f.SlowRate):
		s.mu.Lock()
		s.stats.Faulted++
		s.mu.Unlock()
		// The answer comes, late: the token is issued even if the caller
		// has given up.
		time.Sleep(f.SlowLatency)
		return true
	case hit(f.RateLimitRate):
		fault()
		ra := f.RetryAfterSeconds
		if ra <= 0 {
			ra = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(ra))
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "rate limit exceeded"})
		return false
	case hit(f.ErrorRate):
		fault()
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		return false
	case hit(f.HTMLRate):
		fault()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>")
		return false
	case hit(f.GarbageRate):
		fault()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "{\"success\":tru\x00e,,,")
		return false
	}
	return true
}

// shapeFor returns the answer shape for a seller.
func (s *Server) shapeFor(seller string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.faults.ShapeBy[seller]; ok && seller != "" {
		return sh
	}
	return s.faults.Shape
}

// failShape answers a call in a shape that is not a token, and reports
// whether it did.
func (s *Server) failShape(w http.ResponseWriter, r *http.Request, flow, shape string) bool {
	var status int
	var body any
	switch shape {
	case ShapeRefusalIn200:
		status, body = http.StatusOK, map[string]any{
			"ajio":           map[string]any{"success": false, "message": "account blocked"},
			"oauth2_refresh": map[string]any{"error": "account_suspended"},
			"unicommerce":    map[string]any{"status": "INVALID_CREDENTIALS"},
		}[flow]
	case ShapeServerErrorIn200:
		status, body = http.StatusOK, map[string]any{
			"ajio":           map[string]any{"success": false, "statusCode": 503, "message": "Service unavailable, please retry"},
			"oauth2_refresh": map[string]any{"error": "temporarily_unavailable"},
		}[flow]
		if flow == "unicommerce" {
			status, body = http.StatusServiceUnavailable, map[string]any{"status": "ERROR"}
		}
	case ShapeUnknown:
		status, body = http.StatusOK, map[string]any{
			"ajio":           map[string]any{"ok": true, "data": map[string]string{"token": "x"}},
			"oauth2_refresh": map[string]any{"token_type": "Bearer", "scope": "orders"},
			"unicommerce":    map[string]any{"status": "PENDING"},
		}[flow]
	case ShapeTruncated:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true,"status":"SUCCESS","access_token":"x`)
	case ShapeEmpty:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
	case ShapeRedirect:
		http.Redirect(w, r, "/moved"+r.URL.Path, http.StatusFound)
	case ShapeDrop:
		if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
			c.Close()
		}
	case ShapeHuge:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"pad":"`+strings.Repeat("x", 1<<20)+`"}`)
	default:
		return false
	}
	if body != nil {
		writeJSON(w, status, body)
	}
	s.mu.Lock()
	s.stats.Faulted++
	s.mu.Unlock()
	return true
}

// writeToken writes a token answer in the seller's shape: form-encoded,
// JSON labelled text/plain, expires_in as a string, absurd or absent.
func writeToken(w http.ResponseWriter, shape string, out map[string]any) {
	if _, ok := out["expires_in"]; ok {
		switch shape {
		case ShapeExpiresInString:
			out["expires_in"] = strconv.Itoa(out["expires_in"].(int))
		case ShapeAbsurdExpiresIn:
			out["expires_in"] = int64(1e12)
		case ShapeNoExpiresIn:
			delete(out, "expires_in")
		}
	}
	switch shape {
	case ShapeForm:
		form := url.Values{}
		for k, v := range out {
			form.Set(k, fmt.Sprint(v))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded")
		io.WriteString(w, form.Encode())
	case ShapeTextPlain:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = json.NewEncoder(w).Encode(out)
	default:
		writeJSON(w, http.StatusOK, out)
	}
}

// inFlight counts a call being answered until the returned func runs.
func (s *Server) inFlight() func() {
	s.mu.Lock()
	s.stats.InFlight++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.stats.InFlight--
		s.mu.Unlock()
	}
}

func (s *Server) accepts(username, password string) bool {
	if username == "" || password == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults.RejectAll {
		return false
	}
	if p, ok := s.sellers[username]; ok {
		return p == password
	}
	return strings.HasSuffix(username, GeneratedDomain) && password == Password(username)
}

// issue mints an access token for username and remembers it.
func (s *Server) issue(prefix, username string) string {
	tok := randomToken(prefix)
	s.mu.Lock()
	s.noteIssued(tok, username)
	s.mu.Unlock()
	return tok
}

// noteIssued remembers an access token issued to username, numbered in the
// order of issuance. The caller holds s.mu.
func (s *Server) noteIssued(tok, username string) {
	s.issued[tok] = username
	s.stats.Issued++
	g := s.gens[username]
	if g == nil {
		g = &Generation{}
		s.gens[username] = g
	}
	g.Issued++
	g.LastAt = time.Now()
	s.seq[tok] = g.Issued
}

// Generation is what the sandbox issued to one username (OAuth: subject).
type Generation struct {
	// Issued counts the access tokens issued; the latest is number Issued.
	Issued int `json:"issued"`
	// LastAt is when the latest was issued.
	LastAt time.Time `json:"last_at"`
	// InFlight is how many calls of the username are being answered.
	InFlight int `json:"in_flight"`
}

// Generations tells, for each access token it issued, its username and its
// number in that username's issuance order (1 is the first), and for each
// of those usernames what was issued so far: a token whose number is below
// its username's Issued is an older one than the marketplace already
// issued.
type Generations struct {
	Tokens map[string]IssuedToken `json:"tokens"`
	Users  map[string]Generation  `json:"users"`
}

// IssuedToken is one access token's owner and issuance number.
type IssuedToken struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
}

// GenerationsOf answers Generations for tokens (unknown ones are left out).
func (s *Server) GenerationsOf(tokens []string) Generations {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Generations{Tokens: map[string]IssuedToken{}, Users: map[string]Generation{}}
	for _, t := range tokens {
		u, ok := s.issued[t]
		if !ok {
			continue
		}
		out.Tokens[t] = IssuedToken{User: u, Seq: s.seq[t]}
		if g := s.gens[u]; g != nil {
			out.Users[u] = Generation{Issued: g.Issued, LastAt: g.LastAt, InFlight: s.userIn[u]}
		}
	}
	return out
}

func (s *Server) reject() {
	s.mu.Lock()
	s.stats.Rejected++
	s.mu.Unlock()
}

func (s *Server) ajio(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	decodeErr := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req)
	defer s.inFlight()()
	if !s.begin(w, r, "ajio", req.Username) {
		return
	}
	shape := s.shapeFor(req.Username)
	if s.failShape(w, r, "ajio", shape) {
		return
	}
	if decodeErr != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "statusCode": 400, "message": "bad request body"})
		return
	}
	if !s.accepts(req.Username, req.Password) {
		s.reject()
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "statusCode": 401, "message": "invalid username or password"})
		return
	}
	writeToken(w, shape, map[string]any{
		"success":    true,
		"statusCode": 0,
		"result": map[string]string{
			"accessToken":  s.issue("ajio-at-", req.Username),
			"refreshToken": randomToken("ajio-rt-"),
		},
	})
}

func (s *Server) unicommerce(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	username, password := q.Get("username"), q.Get("password")
	if !s.begin(w, r, "unicommerce", username) {
		return
	}
	shape := s.shapeFor(username)
	if s.failShape(w, r, "unicommerce", shape) {
		return
	}
	if username == "" || password == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"status": "FAILED", "message": "username and password are required"})
		return
	}
	if !s.accepts(username, password) {
		s.reject()
		writeJSON(w, http.StatusOK, map[string]string{"status": "FAILED", "message": "invalid username or password"})
		return
	}
	writeToken(w, shape, map[string]any{"status": "SUCCESS", "accessToken": s.issue("uc-at-", username)})
}

// oauthRequest is a token request's parameters, from a form or JSON body.
type oauthRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
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

// oauthToken is the RFC 6749 §6 refresh_token grant.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) {
	req, ok := readOAuthRequest(w, r)
	if ok && req.GrantType == "client_credentials" {
		s.clientCredentials(w, r, req)
		return
	}
	s.mu.Lock()
	subject := ""
	if g := s.lookup(req.RefreshToken); g != nil {
		subject = g.subject
	}
	s.mu.Unlock()
	if !s.begin(w, r, "oauth2_refresh", subject) {
		return
	}
	shape := s.shapeFor(subject)
	if s.failShape(w, r, "oauth2_refresh", shape) {
		return
	}
	oauthError := func(status int, code, description string) {
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="sandbox"`)
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, status, map[string]string{"error": code, "error_description": description})
	}
	switch {
	case !ok:
		oauthError(http.StatusBadRequest, "invalid_request", "the body is not a valid form or JSON object")
		return
	case req.GrantType != "refresh_token":
		oauthError(http.StatusBadRequest, "unsupported_grant_type", "only refresh_token is supported")
		return
	case req.RefreshToken == "":
		oauthError(http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	secret, known := s.clients[req.ClientID]
	switch {
	case req.ClientID == "" || !known || secret != req.ClientSecret:
		s.stats.Rejected++
		oauthError(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	case s.faults.RejectAll:
		s.stats.Rejected++
		oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token was revoked")
		return
	}
	g := s.lookup(req.RefreshToken)
	switch {
	case g == nil:
		s.stats.Rejected++
		oauthError(http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case g.clientID != req.ClientID:
		s.stats.Rejected++
		oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token was issued to another client")
		return
	case g.revoked:
		s.stats.Rejected++
		oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token was revoked")
		return
	case !s.current(g):
		s.stats.Rejected++
		if s.faults.ReuseDetection {
			s.revokeFamily(g.subject)
		}
		oauthError(http.StatusBadRequest, "invalid_grant", "the refresh token was rotated and its grace period is over")
		return
	}
	// Remember a signed token once used, so rotation can retire it.
	s.grants[req.RefreshToken] = g

	access := randomToken("oauth-at-")
	s.noteIssued(access, g.subject)
	expiresIn := s.faults.OAuthExpiresIn
	if by, ok := s.faults.OAuthExpiresInBy[g.subject]; ok {
		expiresIn = by
	}
	if expiresIn <= 0 {
		expiresIn = DefaultOAuthExpiresIn
	}
	out := map[string]any{
		"access_token": access,
		"token_type":   "Bearer",
		"expires_in":   expiresIn,
		"scope":        "orders inventory",
	}
	if s.faults.Rotate {
		next := signedRefresh(g.subject + "~" + randomToken(""))
		s.grants[next] = &grant{clientID: g.clientID, subject: g.subject}
		if g.until.IsZero() {
			g.until = now.Add(s.faults.RotationGrace)
		}
		out["refresh_token"] = next
	}
	w.Header().Set("Cache-Control", "no-store")
	writeToken(w, shape, out)
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

func randomToken(prefix string) string {
	b := make([]byte, 18)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func hit(rate float64) bool { return rate > 0 && mrand.Float64() < rate }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a caller that hung up is not the sandbox's problem
}
