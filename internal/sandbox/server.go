package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Server is the sandbox marketplace.
type Server struct {
	mu      sync.Mutex
	sellers map[string]string
	clients map[string]string // OAuth client id → secret
	grants  map[string]*grant // OAuth refresh token → what it grants
	faults  Faults
	calls   map[string]int         // by seller (see call.seller)
	userIn  map[string]int         // calls being answered, by seller
	gens    map[string]*Generation // latest issuance by seller
	seq     map[string]int         // access token → its issuance number for its seller
	issued  map[string]string      // access token → its seller
	stats   Stats
	second  int64
	inSec   int
	now     func() time.Time // the clock of the rotation grace
	recent  []time.Time      // call starts of the last second, oldest first
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

// Handler serves the flows, each through the one wrapper (serve), and the
// control endpoints:
//
//	GET  /                   Index: what the sandbox serves (JSON)
//	POST /authToken          Ajio: JSON {username,password}
//	GET  /authToken          Unicommerce: ?username=..&password=..
//	POST /oauth/token        OAuth2 refresh_token and client_credentials grants, form or JSON body
//	POST /shopzone/v2/login  Shopzone: form {login,secret,client}
//	GET  /_sandbox/faults    the switches; PUT replaces them (JSON)
//	GET  /_sandbox/stats     the counters
//	GET  /_sandbox/calls     token calls by seller
//	POST /_sandbox/owners    JSON array of access tokens → {token: seller} of those it issued
//	POST /_sandbox/generations  JSON array of access tokens → Generations (issuance order)
//	POST /_sandbox/sellers   register {username,password}
//	POST /_sandbox/oauth/clients         register {client_id,client_secret}
//	POST /_sandbox/oauth/refresh_tokens  register {client_id,subject,refresh_token}
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authToken", s.serve(s.readAjio))
	mux.HandleFunc("GET /authToken", s.serve(s.readUnicommerce))
	mux.HandleFunc("POST /oauth/token", s.serve(s.readOAuthToken))
	mux.HandleFunc("POST "+ShopzonePath, s.serve(s.readShopzone))
	s.control(mux)
	return mux
}

func randomToken(prefix string) string {
	b := make([]byte, 18)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a caller that hung up is not the sandbox's problem
}

// decodeJSON decodes up to limit bytes of a request's body into v.
func decodeJSON(r *http.Request, limit int64, v any) error {
	return json.NewDecoder(io.LimitReader(r.Body, limit)).Decode(v)
}
