package sandbox

import "net/http"

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
		{"POST", "/_sandbox/owners", "JSON array of access tokens: the seller each was issued to"},
		{"POST", "/_sandbox/generations", "JSON array of access tokens: their issuance order by seller"},
		{"POST", "/_sandbox/sellers", "register a seller {username,password}"},
		{"POST", "/_sandbox/oauth/clients", "register an OAuth client {client_id,client_secret}"},
		{"POST", "/_sandbox/oauth/refresh_tokens", "register a refresh token {client_id,subject,refresh_token}"},
	},
}

// control registers the index and the control endpoints (see Handler).
func (s *Server) control(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, Index) })
	mux.HandleFunc("GET /_sandbox/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	mux.HandleFunc("PUT /_sandbox/faults", s.putFaults)
	mux.HandleFunc("GET /_sandbox/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Stats()) })
	mux.HandleFunc("GET /_sandbox/calls", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.CallsByUser()) })
	mux.HandleFunc("POST /_sandbox/owners", s.postOwners)
	mux.HandleFunc("POST /_sandbox/generations", s.postGenerations)
	mux.HandleFunc("POST /_sandbox/sellers", s.postSeller)
	mux.HandleFunc("POST /_sandbox/oauth/clients", s.postClient)
	mux.HandleFunc("POST /_sandbox/oauth/refresh_tokens", s.postRefreshToken)
}

func (s *Server) putFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	if err := decodeJSON(r, 1<<16, &f); err != nil {
		http.Error(w, "bad faults: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

func (s *Server) postOwners(w http.ResponseWriter, r *http.Request) {
	var tokens []string
	if err := decodeJSON(r, 1<<24, &tokens); err != nil {
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
}

func (s *Server) postGenerations(w http.ResponseWriter, r *http.Request) {
	var tokens []string
	if err := decodeJSON(r, 1<<24, &tokens); err != nil {
		http.Error(w, "want a JSON array of access tokens", http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, s.GenerationsOf(tokens))
}

func (s *Server) postSeller(w http.ResponseWriter, r *http.Request) {
	var c struct{ Username, Password string }
	if err := decodeJSON(r, 1<<16, &c); err != nil || c.Username == "" || c.Password == "" {
		http.Error(w, "want {username,password}", http.StatusBadRequest)
		return
	}
	s.AddSeller(c.Username, c.Password)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postClient(w http.ResponseWriter, r *http.Request) {
	var c struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := decodeJSON(r, 1<<16, &c); err != nil || c.ClientID == "" || c.ClientSecret == "" {
		http.Error(w, "want {client_id,client_secret}", http.StatusBadRequest)
		return
	}
	s.AddClient(c.ClientID, c.ClientSecret)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) postRefreshToken(w http.ResponseWriter, r *http.Request) {
	var g struct {
		ClientID     string `json:"client_id"`
		Subject      string `json:"subject"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(r, 1<<16, &g); err != nil || g.ClientID == "" || g.RefreshToken == "" {
		http.Error(w, "want {client_id,subject,refresh_token}", http.StatusBadRequest)
		return
	}
	s.AddRefreshToken(g.ClientID, g.Subject, g.RefreshToken)
	w.WriteHeader(http.StatusNoContent)
}
