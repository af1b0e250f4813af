// Package oauth2refresh renews tokens with the OAuth 2.0 refresh_token grant
// (RFC 6749 §6): POST token_url with grant_type=refresh_token, client_id,
// client_secret and the connection's refresh token. The answer carries
// expires_in, and may carry a new refresh token (rotation), which the caller
// must store with the access token in one write.
package oauth2refresh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// name is how reasons refer to the marketplace.
const name = "oauth2 token endpoint"

// The request body formats.
const (
	// FormatForm is application/x-www-form-urlencoded, as RFC 6749 §3.2
	// requires.
	FormatForm = "form"
	// FormatJSON is a JSON object of the same parameters, for servers that
	// take only JSON.
	FormatJSON = "json"
)

// maxExpiresIn bounds a believable expires_in (ten years): anything larger is
// a broken server, and would overflow a time.Duration soon after.
const maxExpiresIn = 10 * 365 * 24 * 3600

// Config of one OAuth2 refresh provider.
type Config struct {
	TokenURL string
	// ClientID and ClientSecret are used when a connection's inputFields
	// carry none.
	ClientID     string
	ClientSecret string
	// BodyFormat is FormatForm (default) or FormatJSON.
	BodyFormat string
	// TokenTTL is the lifetime assumed when an answer has no expires_in;
	// zero makes such an answer a transient failure.
	TokenTTL time.Duration
	Timeout  time.Duration
	Client   *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Provider is the OAuth2 refresh_token grant client.
type Provider struct {
	cfg Config
}

var _ token.Provider = (*Provider)(nil)

// New returns a client.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, errors.New("oauth2refresh: an HTTP client is required")
	}
	u, err := url.Parse(cfg.TokenURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("oauth2refresh: token URL is not an absolute http(s) URL")
	}
	if cfg.BodyFormat == "" {
		cfg.BodyFormat = FormatForm
	}
	if cfg.BodyFormat != FormatForm && cfg.BodyFormat != FormatJSON {
		return nil, fmt.Errorf("oauth2refresh: body format must be %s or %s", FormatForm, FormatJSON)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg}, nil
}

// response is a token endpoint's answer, success (RFC 6749 §5.1) or error
// (§5.2). expires_in is raw: some servers send it as a string.
type response struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	Error        string          `json:"error"`
	// error_description is deliberately not read: servers word it freely
	// and some echo the request (the refresh token) into it.
}

// Refresh exchanges the connection's refresh token for a new access token.
func (p *Provider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	clientID, clientSecret, err := p.client(c.InputFields)
	if err != nil {
		return token.Token{}, err
	}
	refreshToken := strings.TrimSpace(c.RefreshToken)
	if refreshToken == "" {
		return token.Token{}, token.Permanent("no refresh token stored for the connection (refreshToken is empty); it must be authorised again")
	}
	secrets := []string{clientSecret, refreshToken, clientID}

	params := [][2]string{
		{"grant_type", "refresh_token"},
		{"client_id", clientID},
		{"client_secret", clientSecret},
		{"refresh_token", refreshToken},
	}
	var body []byte
	contentType := "application/x-www-form-urlencoded"
	if p.cfg.BodyFormat == FormatJSON {
		m := make(map[string]string, len(params))
		for _, kv := range params {
			m[kv[0]] = kv[1]
		}
		if body, err = json.Marshal(m); err != nil {
			return token.Token{}, token.Permanent("malformed credentials: cannot encode the request")
		}
		contentType = "application/json"
	} else {
		form := url.Values{}
		for _, kv := range params {
			form.Set(kv[0], kv[1])
		}
		body = []byte(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.TokenURL, bytes.NewReader(body))
	if err != nil {
		return token.Token{}, token.Permanent("%s: cannot build the request", name)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")

	obtainedAt := provider.ObtainedAt(p.cfg.Now())
	resp, err := provider.Do(ctx, p.cfg.Client, req, p.cfg.Timeout)
	if err != nil {
		return token.Token{}, err
	}

	var out response
	decodeErr := json.Unmarshal(resp.Body, &out)
	if decodeErr != nil {
		// Keep what a partly matching body may have filled in out of
		// the verdict: only a fully parsed answer is trusted.
		out = response{}
	}
	if f := errorFailure(resp, out, decodeErr == nil, secrets); f != nil {
		return token.Token{}, f
	}
	if strings.TrimSpace(out.AccessToken) == "" {
		f := token.Transient("%s answered HTTP %d without an access token", name, resp.Status)
		f.Status = resp.Status
		return token.Token{}, f
	}
	lifetime, f := p.lifetime(out.ExpiresIn)
	if f != nil {
		f.Status = resp.Status
		return token.Token{}, f
	}
	return token.Token{
		AccessToken: out.AccessToken,
		// Empty when the server does not rotate: the stored one is kept.
		RefreshToken: strings.TrimSpace(out.RefreshToken),
		ExpiresAt:    obtainedAt.Add(lifetime),
	}, nil
}

// client returns the client credentials: the connection's own when its
// inputFields carry them (client_id/client_secret, or clientId/clientSecret),
// each falling back to the provider's. inputFields may be empty when the
// provider holds the credentials; when present they must be a JSON object.
func (p *Provider) client(inputFields []byte) (id, secret string, err error) {
	var fields token.Fields
	if trimmed := bytes.TrimSpace(inputFields); len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if fields, err = token.ParseFields(trimmed); err != nil {
			return "", "", err
		}
	}
	pick := func(keys ...string) (string, error) {
		for _, k := range keys {
			v, err := fields.String(k)
			if err != nil {
				return "", err
			}
			if v = strings.TrimSpace(v); v != "" {
				return v, nil
			}
		}
		return "", nil
	}
	if id, err = pick("client_id", "clientId"); err != nil {
		return "", "", err
	}
	if secret, err = pick("client_secret", "clientSecret"); err != nil {
		return "", "", err
	}
	if id == "" {
		id = p.cfg.ClientID
	}
	if secret == "" {
		secret = p.cfg.ClientSecret
	}
	if id == "" {
		return "", "", token.Permanent(`malformed inputFields: "client_id" is missing, and the provider configures none`)
	}
	if secret == "" {
		return "", "", token.Permanent(`malformed inputFields: "client_secret" is missing, and the provider configures none`)
	}
	return id, secret, nil
}

// permanentCodes are the RFC 6749 §5.2 codes that no retry can fix: the
// grant, the client or the request is refused until someone changes it.
var permanentCodes = map[string]bool{
	"invalid_grant":          true,
	"invalid_client":         true,
	"unauthorized_client":    true,
	"unsupported_grant_type": true,
	"invalid_request":        true,
	"invalid_scope":          true,
	"access_denied":          true,
}

// transientCodes are the §5.2 (and §4.1.2.1) codes of a server in trouble.
var transientCodes = map[string]bool{
	"temporarily_unavailable": true,
	"server_error":            true,
}

// errorFailure classifies an answer that is not a token: a status of the
// server's trouble (429, 5xx) is transient whatever the body says; an RFC
// 6749 error code decides next; then the status; then a 2xx that is not JSON.
// It returns nil for a 2xx JSON answer without an error code.
func errorFailure(r *provider.Response, out response, parsed bool, secrets []string) *token.Failure {
	// RFC 6749 codes are lowercase; some servers shout them.
	code := strings.ToLower(strings.TrimSpace(out.Error))
	suffix := ""
	if shown := showCode(code, secrets); shown != "" {
		suffix = " (error " + shown + ")"
	}
	switch {
	case r.Status == http.StatusTooManyRequests || r.Status == http.StatusRequestTimeout || r.Status >= 500:
		f := provider.StatusFailure(name, r)
		f.Reason += suffix
		return f
	case permanentCodes[code]:
		return withStatus(token.Permanent("%s refused the refresh: %s (HTTP %d)", name, code, r.Status), r)
	case transientCodes[code]:
		f := withStatus(token.Transient("%s is in trouble: %s (HTTP %d)", name, code, r.Status), r)
		f.RetryAfter = provider.RetryAfter(r.Header, time.Now())
		return f
	case r.Status >= 300:
		f := provider.StatusFailure(name, r)
		f.Reason += suffix
		return f
	case code != "":
		// A 2xx carrying an error code nobody defined: not a token, and
		// not a clear refusal either.
		return withStatus(token.Transient("%s answered HTTP %d with an unrecognised error code%s instead of a token", name, r.Status, suffix), r)
	case !parsed:
		return provider.NotJSON(name, r)
	}
	return nil
}

func withStatus(f *token.Failure, r *provider.Response) *token.Failure {
	f.Status = r.Status
	return f
}

// showCode returns an error code fit for a reason, or "" when it is not. The
// standard codes are shown as they are; anything else only when it looks
// like a code (a short lowercase word) and holds none of the request's
// secrets, since a server may echo its input into any field.
func showCode(code string, secrets []string) string {
	if permanentCodes[code] || transientCodes[code] {
		return code
	}
	if code == "" || len(code) > 40 {
		return ""
	}
	for _, r := range code {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' && r != '.' && r != '-' {
			return ""
		}
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(code, s) || strings.Contains(s, code)) {
			return ""
		}
	}
	return strconv.Quote(code)
}

// lifetime reads expires_in (a JSON number, or a numeric string as some
// servers send). Without it the configured TokenTTL stands in; without that
// the answer is a transient failure: a token of unknown lifetime cannot be
// scheduled, and guessing one could leave the stored token lapsed.
func (p *Provider) lifetime(raw json.RawMessage) (time.Duration, *token.Failure) {
	s := strings.TrimSpace(string(raw))
	if unq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(unq)
	}
	var secs float64
	if s != "" && s != "null" {
		var err error
		secs, err = strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(secs) || secs < 0 || secs > maxExpiresIn {
			return 0, token.Transient("%s answered an unusable expires_in", name)
		}
	}
	// A whole second at least: 0 (or a fraction) is what some servers
	// send for "not saying", so it counts as absent.
	if secs < 1 {
		if p.cfg.TokenTTL > 0 {
			return p.cfg.TokenTTL, nil
		}
		return 0, token.Transient("%s answered without expires_in, and the provider sets no token_ttl to assume", name)
	}
	return time.Duration(secs) * time.Second, nil
}
