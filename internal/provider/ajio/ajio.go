// Package ajio renews Ajio seller tokens: POST {base_url}/authToken with the
// seller's username and password. Ajio returns no expiry; a token lives
// TokenTTL (30 minutes) from the moment it was requested.
package ajio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// DefaultBaseURL is Ajio's production seller API.
const DefaultBaseURL = "https://api-seller.services.ajio.com"

// DefaultTokenTTL is the lifetime the Ajio team gives for a token.
const DefaultTokenTTL = 30 * time.Minute

// Config of one Ajio provider. Zero values take the defaults.
type Config struct {
	BaseURL  string
	TokenTTL time.Duration
	Timeout  time.Duration
	Client   *http.Client
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

type response struct {
	Success    *bool `json:"success"`
	StatusCode *int  `json:"statusCode"`
	Result     struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	} `json:"result"`
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

	var out response
	decodeErr := json.Unmarshal(resp.Body, &out)
	switch {
	case resp.Status >= 300:
		// Ajio answers a rejected login with success:false, sometimes
		// under a 4xx; the status decides permanence either way.
		return token.Token{}, provider.StatusFailure("ajio", resp)
	case decodeErr != nil || out.Success == nil:
		return token.Token{}, provider.NotJSON("ajio", resp)
	case !*out.Success:
		code := -1
		if out.StatusCode != nil {
			code = *out.StatusCode
		}
		f := token.Permanent("ajio rejected the credentials (success:false, statusCode %d)", code)
		f.Status = resp.Status
		return token.Token{}, f
	case strings.TrimSpace(out.Result.AccessToken) == "":
		f := token.Transient("ajio answered success:true without an access token")
		f.Status = resp.Status
		return token.Token{}, f
	}
	return token.Token{
		AccessToken:  out.Result.AccessToken,
		RefreshToken: out.Result.RefreshToken,
		ExpiresAt:    obtainedAt.Add(p.ttl),
	}, nil
}
