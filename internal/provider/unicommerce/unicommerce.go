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
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// DefaultTokenTTL is the lifetime assumed for a token: the seed document
// advises marketplaces to issue tokens of 24 to 48 hours.
const DefaultTokenTTL = 24 * time.Hour

const name = "unicommerce"

// Config of one Unicommerce provider. Zero values take the defaults.
type Config struct {
	BaseURL  string
	TokenTTL time.Duration
	Timeout  time.Duration
	Client   *http.Client
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
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/") + "/authToken")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("unicommerce: base URL is not an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.User != nil {
		return nil, errors.New("unicommerce: base URL must not carry credentials or a query")
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

type response struct {
	Status      *string `json:"status"`
	AccessToken string  `json:"accessToken"`
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

	var out response
	decodeErr := json.Unmarshal(resp.Body, &out)
	switch {
	case resp.Status >= 300:
		return token.Token{}, provider.StatusFailure(name, resp)
	case decodeErr != nil || out.Status == nil:
		return token.Token{}, provider.NotJSON(name, resp)
	case strings.EqualFold(*out.Status, "FAILED"):
		f := token.Permanent("%s rejected the credentials (status FAILED)", name)
		f.Status = resp.Status
		return token.Token{}, f
	case !strings.EqualFold(*out.Status, "SUCCESS"):
		// The value is not quoted: a server may echo anything into it.
		f := token.Transient("%s answered an unrecognised status (neither SUCCESS nor FAILED)", name)
		f.Status = resp.Status
		return token.Token{}, f
	case strings.TrimSpace(out.AccessToken) == "":
		f := token.Transient("%s answered SUCCESS without an access token", name)
		f.Status = resp.Status
		return token.Token{}, f
	}
	return token.Token{AccessToken: out.AccessToken, ExpiresAt: obtainedAt.Add(p.ttl)}, nil
}
