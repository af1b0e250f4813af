// Package clientcredentials renews tokens with the OAuth 2.0 client
// credentials grant (RFC 6749 §4.4): POST token_url with
// grant_type=client_credentials, an optional scope and audience and extra
// form parameters, the client authenticating in the body (client_id,
// client_secret) or with HTTP Basic (RFC 6749 §2.3.1). There is no refresh
// token: every refresh is a new grant. The answer is read and placed exactly
// as oauth2_refresh's (oauth2refresh.Verdicts, RFC 6749 §5.1/§5.2): the two
// kinds share the request and the verdict table.
package clientcredentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/token"
)

// The client authentication methods (RFC 6749 §2.3.1).
const (
	// AuthBody sends client_id and client_secret as request parameters.
	AuthBody = "body"
	// AuthBasic sends them with HTTP Basic; the body holds neither.
	AuthBasic = "basic"
)

// KindName is the kind: of a client credentials entry of the providers
// file.
const KindName = "oauth2_client_credentials"

// Kind is the oauth2_client_credentials entry of the providers file:
// token_url (required), client_id and client_secret or client_secret_env
// (the fallback when a connection's inputFields carry none), client_auth
// (body, the default, or basic), scope, audience, extra_params (not the
// Reserved ones), body_format (form, the default, or json; basic goes with
// form), token_ttl (the lifetime assumed when an answer has no
// expires_in; none by default) and refresh_before (default 10 minutes).
// The call never sends the connection's refresh token.
var Kind = provider.Kind{
	Name: KindName,
	Keys: []string{"token_url", "client_id", "client_secret", "client_secret_env", "body_format",
		"client_auth", "scope", "audience", "extra_params"},
	Defaults: func(s *provider.Settings) {
		if s.RefreshBefore == 0 {
			s.RefreshBefore = 10 * time.Minute
		}
		if s.BodyFormat == "" {
			s.BodyFormat = oauth2refresh.FormatForm
		}
		if s.ClientAuth == "" {
			s.ClientAuth = AuthBody
		}
	},
	Check: func(s *provider.Settings, getenv func(string) string) []string {
		return provider.First(
			provider.CheckURL("token_url", s.TokenURL, s.AllowInsecureHTTP),
			oauth2refresh.CheckBodyFormat(s.BodyFormat),
			checkRequest(s),
			oauth2refresh.CheckAssumedTTL(s),
			oauth2refresh.CheckClientSecret(s, getenv))
	},
	New: func(s provider.Settings, client *http.Client, getenv func(string) string) (token.Provider, error) {
		secret, err := oauth2refresh.ClientSecret(&s, getenv)
		if err != nil {
			return nil, err
		}
		return New(Config{TokenURL: s.TokenURL, ClientID: s.ClientID, ClientSecret: secret,
			ClientAuth: s.ClientAuth, Scope: s.Scope, Audience: s.Audience, ExtraParams: s.ExtraParams,
			BodyFormat: s.BodyFormat, TokenTTL: s.TokenTTL, Timeout: s.Timeout, Client: client,
			AllowInsecureHTTP: s.AllowInsecureHTTP})
	},
}

// checkRequest returns the mistake in an entry's client_auth,
// extra_params or token_ttl, or "".
func checkRequest(s *provider.Settings) string {
	if s.ClientAuth != AuthBody && s.ClientAuth != AuthBasic {
		return fmt.Sprintf("client_auth must be body or basic, not %q", s.ClientAuth)
	}
	if s.ClientAuth == AuthBasic && s.BodyFormat == oauth2refresh.FormatJSON {
		// Not contradictory in itself, but RFC 6749 §2.3.1 Basic goes
		// with a form body; keep to what servers implement.
		return "client_auth basic goes with body_format form (RFC 6749 §2.3.1)"
	}
	for k := range s.ExtraParams {
		for _, r := range Reserved {
			if strings.EqualFold(k, r) {
				return fmt.Sprintf("extra_params may not set %s (the grant sets it)", r)
			}
		}
	}
	if s.TokenTTL < 0 {
		return "token_ttl must be positive"
	}
	return ""
}

// Config of one client-credentials provider.
type Config struct {
	TokenURL string
	// AllowInsecureHTTP accepts an http:// URL to a host that is not
	// loopback (the entry's allow_insecure_http); New refuses it otherwise.
	AllowInsecureHTTP bool
	// ClientID and ClientSecret are used when a connection's inputFields
	// carry none.
	ClientID     string
	ClientSecret string
	// ClientAuth is AuthBody (default) or AuthBasic.
	ClientAuth string
	// Scope and Audience are sent when set; ExtraParams are sent as they
	// are (they cannot replace grant_type or the client's parameters).
	Scope       string
	Audience    string
	ExtraParams map[string]string
	// BodyFormat is oauth2refresh.FormatForm (default) or FormatJSON.
	BodyFormat string
	// TokenTTL is the lifetime assumed when an answer has no expires_in.
	TokenTTL time.Duration
	Timeout  time.Duration
	Client   *http.Client
	Now      func() time.Time
}

// Reserved are the parameters ExtraParams may not set.
var Reserved = []string{"grant_type", "client_id", "client_secret", "scope", "audience", "refresh_token"}

// Provider is the client-credentials grant client.
type Provider struct {
	cfg   Config
	grant *oauth2refresh.Provider
}

var _ token.Provider = (*Provider)(nil)

// New returns a client.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientAuth == "" {
		cfg.ClientAuth = AuthBody
	}
	if cfg.ClientAuth != AuthBody && cfg.ClientAuth != AuthBasic {
		return nil, errors.New("clientcredentials: client_auth must be body or basic")
	}
	for k := range cfg.ExtraParams {
		for _, r := range Reserved {
			if strings.EqualFold(k, r) {
				return nil, errors.New("clientcredentials: extra_params may not set " + r)
			}
		}
	}
	g, err := oauth2refresh.New(oauth2refresh.Config{TokenURL: cfg.TokenURL, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret,
		BodyFormat: cfg.BodyFormat, TokenTTL: cfg.TokenTTL, Timeout: cfg.Timeout, Client: cfg.Client, Now: cfg.Now,
		AllowInsecureHTTP: cfg.AllowInsecureHTTP, Package: "clientcredentials", Grant: "the client_credentials grant"})
	if err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, grant: g}, nil
}

// Refresh asks for a new token with the client's credentials. The
// connection's refresh token is neither sent nor needed; the answer's
// refresh token, if any, is stored as oauth2_refresh stores one.
func (p *Provider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	id, secret, err := p.grant.ClientCredentials(c.InputFields)
	if err != nil {
		return token.Token{}, err
	}
	params := [][2]string{{"grant_type", "client_credentials"}}
	var basic *[2]string
	if p.cfg.ClientAuth == AuthBasic {
		basic = &[2]string{id, secret}
	} else {
		params = append(params, [2]string{"client_id", id}, [2]string{"client_secret", secret})
	}
	if p.cfg.Scope != "" {
		params = append(params, [2]string{"scope", p.cfg.Scope})
	}
	if p.cfg.Audience != "" {
		params = append(params, [2]string{"audience", p.cfg.Audience})
	}
	keys := make([]string, 0, len(p.cfg.ExtraParams))
	for k := range p.cfg.ExtraParams {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		params = append(params, [2]string{k, p.cfg.ExtraParams[k]})
	}
	return p.grant.Exchange(ctx, params, basic, []string{secret, id})
}
