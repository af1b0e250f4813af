// Package unicommerce renews tokens of Unicommerce-style marketplaces:
// GET {base_url}/authToken?username=..&password=.. answered by
// {"status":"SUCCESS"|"FAILED","accessToken"}. The answer has no expiry; a
// token lives TokenTTL (24 hours by default) from the moment it was asked for.
//
// The credentials travel in the query string, so the request URL is a
// secret: it is built here and never formatted into an error or a log line
// (provider.Do names the endpoint without its query).
package unicommerce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// DefaultTokenTTL is the lifetime assumed for a token: the seed document
// advises marketplaces to issue tokens of 24 to 48 hours.
const DefaultTokenTTL = 24 * time.Hour

const name = "unicommerce"

// KindName is the kind: of a Unicommerce entry of the providers file.
const KindName = "unicommerce"

// Kind is the unicommerce entry of the providers file: base_url
// (required), token_ttl (the token's lifetime, default DefaultTokenTTL) and
// refresh_before (default 2 hours). The call sends the seller's
// inputFields, never the refresh token.
var Kind = provider.LoginKind(KindName, "", DefaultTokenTTL, 2*time.Hour,
	func(s provider.Settings, client *http.Client) (token.Provider, error) {
		return New(Config{BaseURL: s.BaseURL, TokenTTL: s.TokenTTL, Timeout: s.Timeout, Client: client,
			AllowInsecureHTTP: s.AllowInsecureHTTP})
	})

// Config of one Unicommerce provider. Zero values take the defaults.
type Config struct {
	BaseURL  string
	TokenTTL time.Duration
	Timeout  time.Duration
	Client   *http.Client
	// AllowInsecureHTTP accepts an http:// URL to a host that is not
	// loopback (the entry's allow_insecure_http); New refuses it otherwise.
	AllowInsecureHTTP bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Provider is the Unicommerce client.
type Provider struct {
	endpoint url.URL // without a query
	ttl      time.Duration
	timeout  time.Duration
	client   *http.Client
	now      func() time.Time
}

var _ token.Provider = (*Provider)(nil)

// New returns a Unicommerce client.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, errors.New("unicommerce: an HTTP client is required")
	}
	u, err := httpurl.Plain(strings.TrimRight(cfg.BaseURL, "/") + "/authToken")
	if err != nil {
		return nil, fmt.Errorf("unicommerce: base URL %w", err)
	}
	if err := httpurl.Secure(u, cfg.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("unicommerce: base URL %w", err)
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{endpoint: *u, ttl: cfg.TokenTTL, timeout: cfg.Timeout, client: cfg.Client, now: cfg.Now}, nil
}

// body is the JSON of an answer. The seed document names the token
// accessToken; Unicommerce's public docs also show token and access_token
// for the same answer, so all three are read.
type body struct {
	Word           *string `json:"status"`
	AccessToken    string  `json:"accessToken"`
	Token          string  `json:"token"`
	AccessTokenAlt string  `json:"access_token"`
}

// RefusalWords are the status words that mean the login failed: FAILED
// (the seed document's "Allowable: SUCCESS,FAILED"), INVALID_CREDENTIALS
// (documentation.unicommerce.com, mp-post-authentication and
// nsm_authentication: "Allowable: SUCCESS, INVALID_CREDENTIALS"), and
// FAILURE, the same word's other spelling. Compared case-insensitively.
var RefusalWords = []string{"FAILED", "FAILURE", "INVALID_CREDENTIALS"}

type answer struct {
	provider.Answer
	body
}

func (a *answer) status() string {
	if a.Body != provider.JSON || a.Word == nil {
		return ""
	}
	return strings.ToUpper(strings.TrimSpace(*a.Word))
}

func (a *answer) refused() bool { return slices.Contains(RefusalWords, a.status()) }

func (a *answer) accessToken() string {
	for _, t := range []string{a.AccessToken, a.Token, a.AccessTokenAlt} {
		if t = strings.TrimSpace(t); t != "" {
			return t
		}
	}
	return ""
}

// Verdicts is the Unicommerce answer table, read top to bottom: the first
// row that matches decides. A refusal word is a refusal whatever the HTTP
// status; any other status word but SUCCESS is a shape the product cannot
// place.
var Verdicts = []provider.Row[answer]{
	provider.Rule("HTTP 3xx", provider.Permanent,
		func(a *answer) bool { return a.Redirect() },
		func(a *answer) string { return provider.RedirectReason(name, &a.Answer) }),
	provider.Rule("status FAILED, FAILURE or INVALID_CREDENTIALS (any HTTP status)", provider.Permanent,
		func(a *answer) bool { return a.refused() },
		func(a *answer) string {
			return fmt.Sprintf("%s rejected the credentials (status %s, HTTP %d)", name, a.status(), a.Status)
		}),
	provider.Rule("HTTP 408, 429, 5xx (any other body)", provider.Transient,
		func(a *answer) bool { return a.ServerTrouble() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("HTTP 401, 403, other 4xx (any other body)", provider.Permanent,
		func(a *answer) bool { return a.Status >= 400 },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("2xx HTML, empty, truncated JSON", provider.Transient,
		func(a *answer) bool { return a.Healing() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("2xx status SUCCESS with accessToken (or token, access_token)", provider.Stored,
		func(a *answer) bool { return a.OK() && a.status() == "SUCCESS" && a.accessToken() != "" }, nil),
	provider.Rule("2xx status SUCCESS without a token", provider.Unusable,
		func(a *answer) bool { return a.status() == "SUCCESS" },
		func(a *answer) string {
			return fmt.Sprintf("%s answered SUCCESS without an access token (HTTP %d)", name, a.Status)
		}),
	provider.Rule("2xx another status word", provider.Unusable,
		func(a *answer) bool { return a.status() != "" },
		// The word is not quoted: a server may echo anything into it.
		func(a *answer) string {
			return fmt.Sprintf("%s answered an unrecognised status (not SUCCESS nor a refusal word; HTTP %d)", name, a.Status)
		}),
	provider.Rule("anything else (2xx garbage, a form, JSON without status)", provider.Unusable,
		provider.Always[answer],
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
}

// Refresh requests a new token with the connection's inputFields.
func (p *Provider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	username, password, err := token.Login(c.InputFields)
	if err != nil {
		return token.Token{}, err
	}
	u := p.endpoint
	u.RawQuery = url.Values{"username": {username}, "password": {password}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		// The error would quote the URL, credentials included.
		return token.Token{}, token.Permanent("%s: cannot build the request", name)
	}
	req.Header.Set("Accept", "application/json")

	obtainedAt := provider.ObtainedAt(p.now())
	resp, err := provider.Do(ctx, p.client, req, p.timeout)
	if err != nil {
		return token.Token{}, err
	}

	a := &answer{}
	a.Answer = provider.Read(resp, &a.body)
	if row := provider.Decide(Verdicts, a); row.Verdict != provider.Stored {
		return token.Token{}, a.Fail(row.Verdict, row.Reason(a))
	}
	return token.Token{AccessToken: a.accessToken(), ExpiresAt: obtainedAt.Add(p.ttl)}, nil
}
