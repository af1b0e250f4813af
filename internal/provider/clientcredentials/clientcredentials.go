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
	"net/http"
	"sort"
	"strings"
	"time"

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
