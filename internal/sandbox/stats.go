package sandbox

import (
	"maps"
	"time"
)

// Stats is what the sandbox saw, every flow counted alike (the wrapper,
// serve, counts them).
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
	// InFlight is how many calls, of any flow, are being answered now.
	InFlight int `json:"in_flight"`
	// PeakInFlightPerUser is the most calls of one seller (username; OAuth
	// refresh: subject; client credentials: client id) answered at the
	// same moment: 1 when nothing ever called twice at once for one
	// seller.
	PeakInFlightPerUser int `json:"peak_in_flight_per_user"`
	// FamiliesRevoked counts OAuth token families revoked for reuse
	// (Faults.ReuseDetection).
	FamiliesRevoked int `json:"families_revoked"`
}

// Generation is what the sandbox issued to one seller (username; OAuth
// refresh: subject; client credentials: client id).
type Generation struct {
	// Issued counts the access tokens issued; the latest is number Issued.
	Issued int `json:"issued"`
	// LastAt is when the latest was issued.
	LastAt time.Time `json:"last_at"`
	// InFlight is how many calls of the seller are being answered.
	InFlight int `json:"in_flight"`
}

// Generations tells, for each access token it issued, its seller and its
// number in that seller's issuance order (1 is the first), and for each of
// those sellers what was issued so far: a token whose number is below its
// seller's Issued is an older one than the marketplace already issued.
type Generations struct {
	Tokens map[string]IssuedToken `json:"tokens"`
	Users  map[string]Generation  `json:"users"`
}

// IssuedToken is one access token's owner and issuance number.
type IssuedToken struct {
	User string `json:"user"`
	Seq  int    `json:"seq"`
}

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.ByFlow = maps.Clone(s.stats.ByFlow)
	return st
}

// CallsByUser returns how many token calls each seller made.
func (s *Server) CallsByUser() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Calls returns how many token calls a seller (username, OAuth subject or
// client id) made.
func (s *Server) Calls(username string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[username]
}

// IssuedTo returns the seller an access token was issued to, if any.
func (s *Server) IssuedTo(accessToken string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.issued[accessToken]
	return u, ok
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

// track counts the start of a call of flow for seller ("" for nobody) and
// returns what counts its end: the wrapper defers it, so a call is in
// flight until its handler returns, whatever answered it.
func (s *Server) track(flow, seller string) (done func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Calls++
	s.stats.ByFlow[flow]++
	s.stats.InFlight++
	if seller != "" {
		s.calls[seller]++
		s.userIn[seller]++
		s.stats.PeakInFlightPerUser = max(s.stats.PeakInFlightPerUser, s.userIn[seller])
	}
	s.notePeaks(time.Now())
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.stats.InFlight--
		if seller != "" {
			s.userIn[seller]--
		}
	}
}

// notePeaks counts a call started at start in the per-second peaks. The
// caller holds s.mu.
func (s *Server) notePeaks(start time.Time) {
	if sec := start.Unix(); sec != s.second {
		s.second, s.inSec = sec, 0
	}
	s.inSec++
	s.stats.PeakPerSecond = max(s.stats.PeakPerSecond, s.inSec)
	drop := 0
	for drop < len(s.recent) && start.Sub(s.recent[drop]) >= time.Second {
		drop++
	}
	s.recent = append(s.recent[drop:], start)
	s.stats.PeakInAnySecond = max(s.stats.PeakInAnySecond, len(s.recent))
}

// noteIssued remembers an access token issued to seller, numbered in the
// order of issuance. The caller holds s.mu.
func (s *Server) noteIssued(tok, seller string) {
	s.issued[tok] = seller
	s.stats.Issued++
	g := s.gens[seller]
	if g == nil {
		g = &Generation{}
		s.gens[seller] = g
	}
	g.Issued++
	g.LastAt = time.Now()
	s.seq[tok] = g.Issued
}

// countFault counts a call a fault or a shape answered.
func (s *Server) countFault() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Faulted++
}
