package sandbox

import (
	"context"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Faults are the switches. They apply to every flow alike (the wrapper,
// serve, applies them). Rates are probabilities in [0,1], drawn per call in
// the order hang, slow, 429, error, HTML, garbage.
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
	// its password policy would (OAuth refresh: invalid_grant; client
	// credentials: invalid_client).
	RejectAll bool `json:"reject_all"`
	// Rotate makes the OAuth flow issue a new refresh token with every
	// access token. The one presented stays valid for RotationGrace after
	// it was rotated away, then is refused with invalid_grant.
	Rotate        bool          `json:"rotate"`
	RotationGrace time.Duration `json:"rotation_grace"`
	// OAuthExpiresIn is the expires_in of OAuth answers (both grants), in
	// seconds (default 3600).
	OAuthExpiresIn int `json:"oauth_expires_in"`
	// ReuseDetection makes the OAuth flow treat a rotated-away refresh
	// token presented after its grace as a stolen one (RFC 9700 §4.14.2,
	// as ory/fosite does): the whole token family of its subject is
	// revoked, the live refresh token and the access tokens included.
	ReuseDetection bool `json:"reuse_detection"`
	// OAuthExpiresInBy sets OAuthExpiresIn per subject (the seller a
	// refresh token stands for; client credentials: the client id): a
	// marketplace issuing short tokens to some sellers.
	OAuthExpiresInBy map[string]int `json:"oauth_expires_in_by,omitempty"`
	// Shape makes every flow answer in one of the shapes real
	// marketplaces use (the Shape… constants); "" answers normally.
	Shape string `json:"shape,omitempty"`
	// ShapeBy sets the shape per seller (username; OAuth refresh: the
	// refresh token's subject; client credentials: the client id), over
	// Shape.
	ShapeBy map[string]string `json:"shape_by,omitempty"`
	// ShopzoneExpiresIn is how far ahead the Shopzone flow's absolute
	// expiresAt lies, in seconds (default 3600).
	ShopzoneExpiresIn int `json:"shopzone_expires_in,omitempty"`
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

// applyFaults applies latency and draws the faults for a call. It returns
// false when a fault answered the call (or the caller gave up waiting).
func (s *Server) applyFaults(w http.ResponseWriter, r *http.Request) bool {
	f := s.Faults()
	if !wait(r.Context(), f.Latency) {
		return false
	}
	switch {
	case hit(f.HangRate):
		s.countFault()
		// Hang until the caller gives up (bounded, so a test run ends).
		wait(r.Context(), 5*time.Minute)
		return false
	case hit(f.SlowRate):
		s.countFault()
		// The answer comes, late: the token is issued even if the caller
		// has given up.
		time.Sleep(f.SlowLatency)
		return true
	}
	if answer := failure(f); answer != nil {
		s.countFault()
		answer(w)
		return false
	}
	return true
}

// wait waits for d, and reports false if ctx ended first.
func wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// failure draws the faults that answer a call in place of the flow, after
// hang and slow: 429, error, HTML, garbage. It returns how to answer, nil
// when none was drawn.
func failure(f Faults) func(http.ResponseWriter) {
	switch {
	case hit(f.RateLimitRate):
		return func(w http.ResponseWriter) {
			ra := f.RetryAfterSeconds
			if ra <= 0 {
				ra = 1
			}
			w.Header().Set("Retry-After", strconv.Itoa(ra))
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "rate limit exceeded"})
		}
	case hit(f.ErrorRate):
		return func(w http.ResponseWriter) {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
		}
	case hit(f.HTMLRate):
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>")
		}
	case hit(f.GarbageRate):
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, "{\"success\":tru\x00e,,,")
		}
	}
	return nil
}

func hit(rate float64) bool { return rate > 0 && mrand.Float64() < rate }
