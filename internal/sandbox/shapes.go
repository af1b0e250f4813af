package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The answer shapes of Faults.Shape; they apply to every flow alike (the
// wrapper, serve, applies them). Success variants apply to accepted
// credentials only; the others answer every call.
const (
	// ShapeForm: the token answer is form-encoded (GitHub style).
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
	// success:false without statusCode, Unicommerce INVALID_CREDENTIALS,
	// Shopzone ACCOUNT_LOCKED.
	ShapeRefusalIn200 = "refusal_in_200"
	// ShapeServerErrorIn200: a server-side failure under HTTP 200: Ajio
	// success:false with statusCode 503 ("please retry"), OAuth
	// temporarily_unavailable, Shopzone MAINTENANCE; Unicommerce has no
	// such word and answers HTTP 503.
	ShapeServerErrorIn200 = "server_error_in_200"
	// ShapeUnknown: a 2xx JSON object the product cannot place: Ajio
	// without success, OAuth without access_token or error, Unicommerce
	// status PENDING, Shopzone ok:true without data.auth.
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

// shapeFor returns the answer shape for a seller.
func (s *Server) shapeFor(seller string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sh, ok := s.faults.ShapeBy[seller]; ok && seller != "" {
		return sh
	}
	return s.faults.Shape
}

// failShape answers a call in a shape that is not a token, in the flow's
// words where the shape has them, and reports whether it did.
func (s *Server) failShape(w http.ResponseWriter, r *http.Request, fl *flow, shape string) bool {
	switch shape {
	case ShapeRefusalIn200:
		writeReply(w, "", fl.refusal)
	case ShapeServerErrorIn200:
		writeReply(w, "", fl.serverError)
	case ShapeUnknown:
		writeReply(w, "", fl.unknown)
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
	s.countFault()
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
