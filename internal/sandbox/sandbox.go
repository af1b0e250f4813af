// Package sandbox is the project's own marketplace: a real HTTP server that
// speaks the token flows the refresher calls, with switches for latency,
// errors, HTML error pages, garbage, hangs, 429s and rejected credentials.
// Tests, the demo and the benchmarks talk to it instead of the marketplaces.
package sandbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	mrand "math/rand/v2"
	"net/http"
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
	// its password policy would.
	RejectAll bool `json:"reject_all"`
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
}

// Server is the sandbox marketplace.
type Server struct {
	mu      sync.Mutex
	sellers map[string]string
	faults  Faults
	calls   map[string]int // by username
	issued  map[string]string
	stats   Stats
	second  int64
	inSec   int
	recent  []time.Time // call starts of the last second, oldest first
}

// New returns a sandbox knowing the seed sellers.
func New() *Server {
	s := &Server{
		sellers: map[string]string{},
		calls:   map[string]int{},
		issued:  map[string]string{},
		stats:   Stats{ByFlow: map[string]int{}},
	}
	for u, p := range SeedSellers {
		s.sellers[u] = p
	}
	return s
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

// Handler serves the flows and the control endpoints:
//
//	POST /authToken          Ajio: JSON {username,password}
//	GET  /_sandbox/faults    the switches; PUT replaces them (JSON)
//	GET  /_sandbox/stats     the counters
//	GET  /_sandbox/calls     token calls by username
//	POST /_sandbox/owners    JSON array of access tokens → {token: username} of those it issued
//	POST /_sandbox/sellers   register {username,password}
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /authToken", s.ajio)
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
	s.issued[tok] = username
	s.stats.Issued++
	s.mu.Unlock()
	return tok
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
	if decodeErr != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"success": false, "statusCode": 400, "message": "bad request body"})
		return
	}
	if !s.accepts(req.Username, req.Password) {
		s.reject()
		writeJSON(w, http.StatusOK, map[string]any{"success": false, "statusCode": 401, "message": "invalid username or password"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"success":    true,
		"statusCode": 0,
		"result": map[string]string{
			"accessToken":  s.issue("ajio-at-", req.Username),
			"refreshToken": randomToken("ajio-rt-"),
		},
	})
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
