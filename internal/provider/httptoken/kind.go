package httptoken

import (
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// KindName is the kind: of an http_token entry of the providers file.
const KindName = "http_token"

// Kind is the http_token entry of the providers file: base_url
// (required), name (how reasons name the marketplace, a short word; by
// default "integration type N marketplace"), request and response (the
// declaration, decoded into a *Spec kept in Settings.Decoded), token_ttl
// (optional; the lifetime when the expiry rule says token_ttl: true, or
// the fallback of expires_in) and refresh_before (default 10 minutes).
// Check reports every mistake of the declaration, one line each. The call
// spends the refresh token when the request maps it (or when the spec is
// not decoded yet: assume the worst).
var Kind = provider.Kind{
	Name: KindName,
	Keys: []string{"base_url", "name", "request", "response"},
	SpendsRefreshToken: func(s *provider.Settings) bool {
		spec, ok := s.Decoded.(*Spec)
		return !ok || spec.Request.SpendsRefreshToken()
	},
	Defaults: func(s *provider.Settings) {
		if s.RefreshBefore == 0 {
			s.RefreshBefore = 10 * time.Minute
		}
	},
	Check: check,
	New: func(s provider.Settings, client *http.Client, _ func(string) string) (token.Provider, error) {
		spec, ok := s.Decoded.(*Spec)
		if !ok {
			decoded, problems := Decode(s.Request, s.Response, s.TokenTTL)
			if len(problems) > 0 {
				return nil, fmt.Errorf("%s: %s", s.Label(), problems[0])
			}
			spec = &decoded
		}
		name := s.Name
		if name == "" {
			name = "integration type " + s.IntegrationType + " marketplace"
		}
		return New(Config{Name: name, BaseURL: s.BaseURL, Spec: *spec, TokenTTL: s.TokenTTL,
			Timeout: s.Timeout, Client: client, AllowInsecureHTTP: s.AllowInsecureHTTP})
	},
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,40}$`)

// check is Kind.Check: the base URL's mistake alone, else every mistake
// of the name, the lifetimes and the declaration.
func check(s *provider.Settings, _ func(string) string) []string {
	if p := provider.CheckURL("base_url", s.BaseURL, s.AllowInsecureHTTP); p != "" {
		return []string{p}
	}
	var lines []string
	if s.Name != "" && !safeName.MatchString(s.Name) {
		lines = append(lines, "name must be a short word (letters, digits, _.-)")
	}
	if s.TokenTTL < 0 {
		lines = append(lines, "token_ttl must be positive")
	}
	if s.TokenTTL > 0 && s.RefreshBefore >= s.TokenTTL {
		lines = append(lines, fmt.Sprintf("refresh_before (%s) must be shorter than token_ttl (%s), or every token is due on every scan",
			s.RefreshBefore, s.TokenTTL))
	}
	spec, problems := Decode(s.Request, s.Response, s.TokenTTL)
	lines = append(lines, problems...)
	if len(lines) == 0 {
		s.Decoded = &spec
	}
	return lines
}
