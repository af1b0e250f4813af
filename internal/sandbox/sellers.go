package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Password is the password the login flows (Ajio, Unicommerce, Shopzone)
// accept for a username ending in GeneratedDomain, so tests and benchmarks
// can make any number of valid sellers without registering them.
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

// AddSeller registers a credential pair.
func (s *Server) AddSeller(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sellers[username] = password
}

// accepts reports whether the login flows accept a credential pair. The
// caller holds s.mu.
func (s *Server) accepts(username, password string) bool {
	if username == "" || password == "" || s.faults.RejectAll {
		return false
	}
	if p, ok := s.sellers[username]; ok {
		return p == password
	}
	return strings.HasSuffix(username, GeneratedDomain) && password == Password(username)
}
