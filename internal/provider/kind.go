package provider

import (
	"fmt"
	"net/http"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Kind is one provider kind of the providers file (kind: ajio), whole: the
// keys its entries take, their defaults and checks, and its client. Each
// provider package exports its own (ajio.Kind); the registry lists them in
// one table and holds no rule of any kind.
type Kind struct {
	// Name is the value of an entry's kind: key ("ajio").
	Name string
	// Keys are the entry keys the kind takes beyond those every entry has
	// (integration_type, kind, token_ttl, refresh_before, timeout,
	// rate_limit_per_second, allow_insecure_http, allow_inline_secrets).
	// Another kind's key, set on an entry of this kind, is refused: "token_url
	// does not apply to kind ajio".
	Keys []string
	// FixedLifetime says the answers carry no lifetime: every token lives
	// token_ttl from the moment it was asked for (token.Target.Lifetime),
	// so token_ttl must be positive and longer than refresh_before.
	FixedLifetime bool
	// SpendsRefreshToken reports whether an entry's call sends the
	// connection's refresh token (a rotating server then retires it); nil
	// means never.
	SpendsRefreshToken func(s *Settings) bool
	// Defaults fills what an entry leaves out. (A timeout left out is then
	// 10 s, for every kind.)
	Defaults func(s *Settings)
	// Check returns an entry's mistakes after Defaults, one line each,
	// without the entry's label (the registry prefixes it); nil when there
	// are none. It may keep what it decoded in s.Decoded for New. getenv
	// reads the variables the entry names (client_secret_env).
	Check func(s *Settings, getenv func(string) string) []string
	// New returns an entry's client, sharing client for HTTP. getenv reads
	// the variables the entry names, so a secret is only held by the client.
	New func(s Settings, client *http.Client, getenv func(string) string) (token.Provider, error)
}

// Settings are one providers-file entry as its kind reads it: every key a
// kind may take, durations as time.Duration. A kind reads only the shared
// keys and its own Keys; the registry has refused an entry that sets
// another kind's.
type Settings struct {
	// Kind and IntegrationType are the entry's kind: and integration_type:.
	Kind            string
	IntegrationType string
	// BaseURL (base_url) or TokenURL (token_url) is the URL the kind calls.
	BaseURL  string
	TokenURL string
	// TokenTTL (token_ttl), RefreshBefore (refresh_before) and Timeout
	// (timeout, per call).
	TokenTTL      time.Duration
	RefreshBefore time.Duration
	Timeout       time.Duration
	// AllowInsecureHTTP accepts an http:// URL to a host that is not
	// loopback (allow_insecure_http, or an ajio base URL from AJIO_BASE_URL
	// that the caller checked). AllowInlineSecrets is allow_inline_secrets.
	AllowInsecureHTTP  bool
	AllowInlineSecrets bool
	// ClientID, ClientSecret, ClientSecretEnv (the variable holding the
	// secret) and BodyFormat (form or json): the OAuth 2.0 kinds.
	ClientID        string
	ClientSecret    string
	ClientSecretEnv string
	BodyFormat      string
	// Name (the name: key) is how an http_token entry's reasons name the
	// marketplace; Request and Response are its declaration, nil when the
	// key is absent.
	Name     string
	Request  *yaml.Node
	Response *yaml.Node
	// ClientAuth (body or basic), Scope, Audience and ExtraParams: an
	// oauth2_client_credentials entry's request.
	ClientAuth  string
	Scope       string
	Audience    string
	ExtraParams map[string]string
	// Decoded is what Check decoded from the entry, for New (http_token:
	// its *httptoken.Spec); nil before Check.
	Decoded any
}

// Label is how errors and logs name an entry: provider "ajio"
// (integration_type "16").
func Label(kind, integrationType string) string {
	return fmt.Sprintf("provider %q (integration_type %q)", kind, integrationType)
}

// Label is the entry's Label.
func (s *Settings) Label() string { return Label(s.Kind, s.IntegrationType) }

// CheckURL returns the mistake in the URL of key (base_url, token_url), or
// "": missing, not an absolute http(s) URL, carrying credentials or a query
// (httpurl.Plain), or http:// to a host that is not loopback without
// allow_insecure_http (httpurl.Secure). It never repeats the URL.
func CheckURL(key, raw string, allowInsecureHTTP bool) string {
	if raw == "" {
		return key + " is missing"
	}
	u, err := httpurl.Plain(raw)
	if err != nil {
		return fmt.Sprintf("%s %v", key, err)
	}
	if err := httpurl.Secure(u, allowInsecureHTTP); err != nil {
		return fmt.Sprintf("%s %v, or set allow_insecure_http: true on the entry", key, err)
	}
	return ""
}

// First is the first of problems that is not "", as Check's one line, or
// nil: for a kind whose checks stop at the first mistake.
func First(problems ...string) []string {
	for _, p := range problems {
		if p != "" {
			return []string{p}
		}
	}
	return nil
}

// LoginKind is the kind of a login-style token API that answers no
// lifetime (Ajio's POST /authToken, Unicommerce's GET /authToken): its
// entries take base_url (defaultBaseURL when left out; "" makes it
// required), token_ttl (default ttl) and refresh_before (default before);
// its tokens live token_ttl (FixedLifetime); the call sends the seller's
// inputFields, never the refresh token. newClient builds the client from
// an entry's settings.
func LoginKind(name, defaultBaseURL string, ttl, before time.Duration,
	newClient func(s Settings, client *http.Client) (token.Provider, error)) Kind {
	return Kind{
		Name:          name,
		Keys:          []string{"base_url"},
		FixedLifetime: true,
		Defaults: func(s *Settings) {
			if s.BaseURL == "" {
				s.BaseURL = defaultBaseURL
			}
			if s.TokenTTL == 0 {
				s.TokenTTL = ttl
			}
			if s.RefreshBefore == 0 {
				s.RefreshBefore = before
			}
		},
		Check: func(s *Settings, _ func(string) string) []string {
			return First(CheckURL("base_url", s.BaseURL, s.AllowInsecureHTTP))
		},
		New: func(s Settings, client *http.Client, _ func(string) string) (token.Provider, error) {
			return newClient(s, client)
		},
	}
}
