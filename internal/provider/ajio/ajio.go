// Package ajio renews Ajio seller tokens: POST {base_url}/authToken with the
// seller's username and password. Ajio returns no expiry; a token lives
// TokenTTL (30 minutes) from the moment it was requested.
package ajio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

const name = "ajio"

// DefaultBaseURL is Ajio's production seller API.
const DefaultBaseURL = "https://api-seller.services.ajio.com"

// DefaultTokenTTL is the lifetime the Ajio team gives for a token.
const DefaultTokenTTL = 30 * time.Minute

// KindName is the kind: of an Ajio entry of the providers file.
const KindName = "ajio"

// Kind is the ajio entry of the providers file: base_url (default
// DefaultBaseURL), token_ttl (the token's lifetime, default
// DefaultTokenTTL) and refresh_before (default 10 minutes). The call
// sends the seller's inputFields, never the refresh token.
var Kind = provider.LoginKind(KindName, DefaultBaseURL, DefaultTokenTTL, 10*time.Minute,
	func(s provider.Settings, client *http.Client) (token.Provider, error) {
		return New(Config{BaseURL: s.BaseURL, TokenTTL: s.TokenTTL, Timeout: s.Timeout, Client: client,
			AllowInsecureHTTP: s.AllowInsecureHTTP})
	})

// Config of one Ajio provider. Zero values take the defaults.
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

// Provider is the Ajio client.
type Provider struct {
	endpoint string
	ttl      time.Duration
	timeout  time.Duration
	client   *http.Client
	now      func() time.Time
}

var _ token.Provider = (*Provider)(nil)

// New returns an Ajio client.
func New(cfg Config) (*Provider, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Client == nil {
		return nil, errors.New("ajio: an HTTP client is required")
	}
	u, err := httpurl.Absolute(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("ajio: base URL %w", err)
	}
	if err := httpurl.Secure(u, cfg.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("ajio: base URL %w", err)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{
		endpoint: strings.TrimRight(cfg.BaseURL, "/") + "/authToken",
		ttl:      cfg.TokenTTL,
		timeout:  cfg.Timeout,
		client:   cfg.Client,
		now:      cfg.Now,
	}, nil
}

type request struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// body is the JSON of an Ajio answer. statusCode is raw: a number, or a
// numeric string from some gateways.
type body struct {
	Success    *bool           `json:"success"`
	StatusCode json.RawMessage `json:"statusCode"`
	Result     struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	} `json:"result"`
}

// answer is an Ajio answer as the verdict table sees it.
type answer struct {
	provider.Answer
	body
	// code is the body's statusCode; hasCode is false when it is absent
	// or null, and code is -1 when it is not a number.
	code    int
	hasCode bool
}

func (a *answer) refused() bool { return a.Body == provider.JSON && a.Success != nil && !*a.Success }

func (a *answer) token() bool {
	return a.OK() && a.Body == provider.JSON && a.Success != nil && *a.Success &&
		strings.TrimSpace(a.Result.AccessToken) != ""
}

func read(resp *provider.Response) *answer {
	a := &answer{}
	a.Answer = provider.Read(resp, &a.body)
	raw := strings.TrimSpace(string(a.StatusCode))
	if raw == "" || raw == "null" {
		return a
	}
	a.hasCode, a.code = true, -1
	if unq, err := strconv.Unquote(raw); err == nil {
		raw = strings.TrimSpace(unq)
	}
	if n, err := strconv.Atoi(raw); err == nil && n >= 0 && n < 1000 {
		a.code = n
	}
	return a
}

// Verdicts is Ajio's answer table, read top to bottom: the first row that
// matches decides. A refusal in the body with a 4xx statusCode is a
// refusal whatever the HTTP status; success:false with a server-side
// statusCode (408, 429, 5xx: "please retry") is the marketplace's trouble
// even under HTTP 200; success:false without a statusCode defers to the
// HTTP status.
var Verdicts = []provider.Row[answer]{
	provider.Rule("HTTP 3xx", provider.Permanent,
		func(a *answer) bool { return a.Redirect() },
		func(a *answer) string { return provider.RedirectReason(name, &a.Answer) }),
	provider.Rule("success:false, statusCode 408/429/5xx (any HTTP status)", provider.Transient,
		func(a *answer) bool { return a.refused() && provider.ServerTroubleCode(a.code) },
		func(a *answer) string {
			return fmt.Sprintf("ajio failed on its side (success:false, statusCode %d, HTTP %d)", a.code, a.Status)
		}),
	provider.Rule("success:false, statusCode 4xx (any HTTP status)", provider.Permanent,
		func(a *answer) bool { return a.refused() && a.code >= 400 && a.code < 500 },
		func(a *answer) string {
			return fmt.Sprintf("ajio rejected the credentials (success:false, statusCode %d)", a.code)
		}),
	provider.Rule("HTTP 408, 429, 5xx (any body)", provider.Transient,
		func(a *answer) bool { return a.ServerTrouble() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("success:false without statusCode", provider.Permanent,
		func(a *answer) bool { return a.refused() && !a.hasCode },
		func(a *answer) string {
			return fmt.Sprintf("ajio rejected the credentials (success:false, no statusCode, HTTP %d)", a.Status)
		}),
	provider.Rule("HTTP 401, 403, other 4xx (any body)", provider.Permanent,
		func(a *answer) bool { return a.Status >= 400 },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("success:false, another statusCode (0, 2xx, 3xx, not a number)", provider.Unusable,
		func(a *answer) bool { return a.refused() },
		func(a *answer) string {
			return fmt.Sprintf("ajio answered success:false with a statusCode that is neither 4xx nor 5xx (HTTP %d)", a.Status)
		}),
	provider.Rule("2xx HTML, empty, truncated JSON", provider.Transient,
		func(a *answer) bool { return a.Healing() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("2xx success:true with result.accessToken", provider.Stored,
		func(a *answer) bool { return a.token() }, nil),
	provider.Rule("2xx success:true without accessToken", provider.Unusable,
		func(a *answer) bool { return a.Body == provider.JSON && a.Success != nil && *a.Success },
		func(a *answer) string {
			return fmt.Sprintf("ajio answered success:true without an access token (HTTP %d)", a.Status)
		}),
	provider.Rule("anything else (2xx garbage, a form, JSON without success)", provider.Unusable,
		provider.Always[answer],
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
}

// Refresh requests a new token with the connection's inputFields.
func (p *Provider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	username, password, err := token.Login(c.InputFields)
	if err != nil {
		return token.Token{}, err
	}
	body, err := json.Marshal(request{Username: username, Password: password})
	if err != nil {
		return token.Token{}, token.Permanent("malformed inputFields: cannot encode the request")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return token.Token{}, token.Permanent("ajio: bad endpoint: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	obtainedAt := provider.ObtainedAt(p.now())
	resp, err := provider.Do(ctx, p.client, req, p.timeout)
	if err != nil {
		return token.Token{}, err
	}

	a := read(resp)
	if row := provider.Decide(Verdicts, a); row.Verdict != provider.Stored {
		return token.Token{}, a.Fail(row.Verdict, row.Reason(a))
	}
	out := a.body
	return token.Token{
		AccessToken:  out.Result.AccessToken,
		RefreshToken: out.Result.RefreshToken,
		ExpiresAt:    obtainedAt.Add(p.ttl),
	}, nil
}
