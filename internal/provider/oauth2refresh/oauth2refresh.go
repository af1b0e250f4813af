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

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/token"
)

// name is how reasons refer to the marketplace.
const name = "oauth2 token endpoint"

// KindName is the kind: of an OAuth 2.0 refresh_token entry of the
// providers file.
const KindName = "oauth2_refresh"

// Kind is the oauth2_refresh entry of the providers file: token_url
// (required), client_id and client_secret or client_secret_env (the
// fallback when a connection's inputFields carry none), body_format (form,
// the default, or json), token_ttl (the lifetime assumed when an answer
// has no expires_in; none by default) and refresh_before (default 10
// minutes). The call spends the connection's refresh token.
var Kind = provider.Kind{
	Name:               KindName,
	Keys:               []string{"token_url", "client_id", "client_secret", "client_secret_env", "body_format"},
	SpendsRefreshToken: func(*provider.Settings) bool { return true },
	Defaults: func(s *provider.Settings) {
		if s.RefreshBefore == 0 {
			s.RefreshBefore = 10 * time.Minute
		}
		if s.BodyFormat == "" {
			s.BodyFormat = FormatForm
		}
	},
	Check: func(s *provider.Settings, getenv func(string) string) []string {
		return provider.First(
			provider.CheckURL("token_url", s.TokenURL, s.AllowInsecureHTTP),
			CheckBodyFormat(s.BodyFormat),
			CheckAssumedTTL(s),
			CheckClientSecret(s, getenv))
	},
	New: func(s provider.Settings, client *http.Client, getenv func(string) string) (token.Provider, error) {
		secret, err := ClientSecret(&s, getenv)
		if err != nil {
			return nil, err
		}
		return New(Config{TokenURL: s.TokenURL, ClientID: s.ClientID, ClientSecret: secret,
			BodyFormat: s.BodyFormat, TokenTTL: s.TokenTTL, Timeout: s.Timeout, Client: client,
			AllowInsecureHTTP: s.AllowInsecureHTTP})
	},
}

// CheckBodyFormat returns the mistake in an entry's body_format, or "".
func CheckBodyFormat(format string) string {
	if format != FormatForm && format != FormatJSON {
		return fmt.Sprintf("body_format must be form or json, not %q", format)
	}
	return ""
}

// CheckAssumedTTL returns the mistake in an entry's token_ttl, the
// lifetime assumed when an answer has no expires_in, or "": when set, it
// must be longer than refresh_before.
func CheckAssumedTTL(s *provider.Settings) string {
	if s.TokenTTL != 0 && s.RefreshBefore >= s.TokenTTL {
		return fmt.Sprintf("refresh_before (%s) must be shorter than token_ttl (%s)", s.RefreshBefore, s.TokenTTL)
	}
	return ""
}

// CheckClientSecret returns the mistake in an entry's client secret, or
// "": client_secret and client_secret_env both set; a client_secret
// written in the file without allow_inline_secrets (the file is read by
// more people, and kept longer, than the secret should be); or a
// client_secret_env naming a variable that getenv finds unset.
func CheckClientSecret(s *provider.Settings, getenv func(string) string) string {
	if s.ClientSecret != "" && s.ClientSecretEnv != "" {
		return "set client_secret or client_secret_env, not both"
	}
	if s.ClientSecret != "" && !s.AllowInlineSecrets {
		return "client_secret is written in the providers file, which more people read than should " +
			"see the secret; put it in an environment variable (from a Secret) and name that with client_secret_env, " +
			"or set allow_inline_secrets: true on the entry"
	}
	_, problem := clientSecret(s, getenv)
	return problem
}

// ClientSecret returns an entry's client secret: the variable its
// client_secret_env names, read with getenv, else its client_secret
// (possibly ""). The error, naming the entry and the variable, says the
// variable is unset.
func ClientSecret(s *provider.Settings, getenv func(string) string) (string, error) {
	secret, problem := clientSecret(s, getenv)
	if problem != "" {
		return "", fmt.Errorf("%s: %s", s.Label(), problem)
	}
	return secret, nil
}

func clientSecret(s *provider.Settings, getenv func(string) string) (secret, problem string) {
	if s.ClientSecretEnv == "" {
		return s.ClientSecret, ""
	}
	if secret = getenv(s.ClientSecretEnv); secret == "" {
		return "", fmt.Sprintf("client_secret_env names %s, which is not set", s.ClientSecretEnv)
	}
	return secret, ""
}

// The request body formats.
const (
	// FormatForm is application/x-www-form-urlencoded, as RFC 6749 §3.2
	// requires.
	FormatForm = "form"
	// FormatJSON is a JSON object of the same parameters, for servers that
	// take only JSON.
	FormatJSON = "json"
)

// Config of one OAuth2 refresh provider.
type Config struct {
	TokenURL string
	// AllowInsecureHTTP accepts an http:// URL to a host that is not
	// loopback (the entry's allow_insecure_http); New refuses it otherwise.
	AllowInsecureHTTP bool
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
	// Package names the package in New's errors: "oauth2refresh" when
	// empty; a package building on this one gives its own name.
	Package string
	// Grant is how a refusal's reason names what was refused: "the
	// refresh" when empty ("oauth2 token endpoint refused the refresh:
	// invalid_grant (HTTP 400)"); another grant gives its own words.
	Grant string
}

// Provider is the OAuth2 refresh_token grant client.
type Provider struct {
	cfg Config
}

var _ token.Provider = (*Provider)(nil)

// New returns a client.
func New(cfg Config) (*Provider, error) {
	if cfg.Package == "" {
		cfg.Package = "oauth2refresh"
	}
	if cfg.Grant == "" {
		cfg.Grant = "the refresh"
	}
	if cfg.Client == nil {
		return nil, errors.New(cfg.Package + ": an HTTP client is required")
	}
	u, err := httpurl.Absolute(cfg.TokenURL)
	if err != nil {
		return nil, fmt.Errorf("%s: token URL %w", cfg.Package, err)
	}
	if err := httpurl.Secure(u, cfg.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("%s: token URL %w", cfg.Package, err)
	}
	if cfg.BodyFormat == "" {
		cfg.BodyFormat = FormatForm
	}
	if cfg.BodyFormat != FormatForm && cfg.BodyFormat != FormatJSON {
		return nil, fmt.Errorf("%s: body format must be %s or %s", cfg.Package, FormatForm, FormatJSON)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg}, nil
}

// body is a token endpoint's answer, success (RFC 6749 §5.1) or error
// (§5.2), from JSON or a form. expires_in is raw: some servers send it as
// a string.
type body struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	Error        string          `json:"error"`
	// error_description is deliberately not read: servers word it freely
	// and some echo the request (the refresh token) into it.
}

// answer is a token endpoint's answer as the verdict table sees it.
type answer struct {
	provider.Answer
	body
	// code is the error member, lowercased (RFC 6749 codes are lowercase;
	// some servers shout them); shown is it fit for a reason, or "".
	code, shown string
	// lifetime is the token's; bad says why it is unusable ("" when it is
	// usable).
	lifetime time.Duration
	bad      string
	// grant is Config.Grant: what a refusal refused.
	grant string
}

func (a *answer) errorSuffix() string {
	if a.shown == "" {
		return ""
	}
	return " (error " + a.shown + ")"
}

func (a *answer) parsed() bool { return a.Body == provider.JSON || a.Body == provider.Form }

func (a *answer) hasToken() bool {
	return a.OK() && a.parsed() && a.code == "" && strings.TrimSpace(a.AccessToken) != ""
}

// Verdicts is the OAuth answer table, read top to bottom: the first row
// that matches decides. An error member is the server's own word and
// decides under any status: the two codes of a server in trouble are
// transient, every other code a refusal (x/oauth2 likewise treats any error
// member as a failed retrieval); only under 408, 429 or 5xx does an unknown
// code defer to the status.
var Verdicts = []provider.Row[answer]{
	provider.Rule("HTTP 3xx", provider.Permanent,
		func(a *answer) bool { return a.Redirect() },
		func(a *answer) string { return provider.RedirectReason(name, &a.Answer) }),
	provider.Rule("error temporarily_unavailable, server_error (any HTTP status)", provider.Transient,
		func(a *answer) bool { return transientCodes[a.code] },
		func(a *answer) string { return fmt.Sprintf("%s is in trouble: %s (HTTP %d)", name, a.code, a.Status) }),
	provider.Rule("error invalid_grant, invalid_client, unauthorized_client, unsupported_grant_type, invalid_request, invalid_scope, access_denied (any HTTP status)", provider.Permanent,
		func(a *answer) bool { return permanentCodes[a.code] },
		func(a *answer) string {
			return fmt.Sprintf("%s refused %s: %s (HTTP %d)", name, a.grant, a.code, a.Status)
		}),
	provider.Rule("HTTP 408, 429, 5xx (any other body)", provider.Transient,
		func(a *answer) bool { return a.ServerTrouble() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) + a.errorSuffix() }),
	provider.Rule("error with an unknown code under 2xx or 4xx", provider.Permanent,
		func(a *answer) bool { return a.code != "" },
		func(a *answer) string {
			return fmt.Sprintf("%s refused %s with an unrecognised error code%s (HTTP %d)", name, a.grant, a.errorSuffix(), a.Status)
		}),
	provider.Rule("HTTP 401, 403, other 4xx without an error member", provider.Permanent,
		func(a *answer) bool { return a.Status >= 400 },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("2xx HTML, empty, truncated JSON", provider.Transient,
		func(a *answer) bool { return a.Healing() },
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
	provider.Rule("2xx access_token (JSON or form) with expires_in ≥ 1 s, number or string (over 10 years: clamped), or absent/0 with token_ttl", provider.Stored,
		func(a *answer) bool { return a.hasToken() && a.bad == "" }, nil),
	provider.Rule("2xx access_token, expires_in negative or not a number, or absent without token_ttl", provider.Unusable,
		func(a *answer) bool { return a.hasToken() },
		func(a *answer) string { return fmt.Sprintf("%s answered %s", name, a.bad) }),
	provider.Rule("2xx JSON or form without access_token", provider.Unusable,
		func(a *answer) bool { return a.parsed() },
		func(a *answer) string {
			return fmt.Sprintf("%s answered HTTP %d without an access token", name, a.Status)
		}),
	provider.Rule("anything else (2xx garbage)", provider.Unusable,
		provider.Always[answer],
		func(a *answer) string { return provider.StatusReason(name, &a.Answer) }),
}

// read parses an answer, JSON or form (as golang.org/x/oauth2 does).
func (p *Provider) read(resp *provider.Response, secrets []string) *answer {
	a := &answer{grant: p.cfg.Grant}
	a.Answer = provider.Read(resp, &a.body)
	if a.Body == provider.Form {
		f := a.Form
		a.body = body{AccessToken: f.Get("access_token"), TokenType: f.Get("token_type"),
			RefreshToken: f.Get("refresh_token"), Error: f.Get("error")}
		if v := f.Get("expires_in"); v != "" {
			a.ExpiresIn = json.RawMessage(strconv.Quote(v))
		}
	}
	a.code = strings.ToLower(strings.TrimSpace(a.Error))
	if permanentCodes[a.code] || transientCodes[a.code] {
		a.shown = a.code
	} else if w := provider.SafeWord(a.code, secrets); w != "" {
		a.shown = strconv.Quote(w)
	}
	a.lifetime, a.bad = p.lifetime(a.ExpiresIn)
	return a
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

	return p.Exchange(ctx, [][2]string{
		{"grant_type", "refresh_token"},
		{"client_id", clientID},
		{"client_secret", clientSecret},
		{"refresh_token", refreshToken},
	}, nil, secrets)
}

// Exchange posts one RFC 6749 token request to the token URL (params in the
// configured body format; basic, when not nil, is the client id and secret
// sent with HTTP Basic, RFC 6749 §2.3.1) and places the answer with
// Verdicts: the request of any grant (refresh_token, client_credentials)
// gets the same verdicts. secrets are kept out of every reason.
func (p *Provider) Exchange(ctx context.Context, params [][2]string, basic *[2]string, secrets []string) (token.Token, error) {
	var body []byte
	var err error
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
	if basic != nil {
		// RFC 6749 §2.3.1: each part form-encoded before Basic.
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}

	obtainedAt := provider.ObtainedAt(p.cfg.Now())
	resp, err := provider.Do(ctx, p.cfg.Client, req, p.cfg.Timeout)
	if err != nil {
		return token.Token{}, err
	}

	a := p.read(resp, secrets)
	if row := provider.Decide(Verdicts, a); row.Verdict != provider.Stored {
		return token.Token{}, a.Fail(row.Verdict, row.Reason(a))
	}
	return token.Token{
		AccessToken: strings.TrimSpace(a.AccessToken),
		// Empty when the server does not rotate: the stored one is kept.
		RefreshToken: strings.TrimSpace(a.RefreshToken),
		ExpiresAt:    obtainedAt.Add(a.lifetime),
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

// MaxLifetime is provider.MaxLifetime: a larger expires_in is clamped to it.
const MaxLifetime = provider.MaxLifetime

// lifetime reads expires_in (a JSON number, or a numeric string as some
// servers and every form body send). Absent, 0 or under a second (what some
// servers send for "not saying"), the configured TokenTTL stands in;
// without that, or when expires_in is negative or not a number, it returns
// why the lifetime is unusable: a token of unknown lifetime cannot be
// scheduled, and guessing one could leave a lapsed token looking fresh.
func (p *Provider) lifetime(raw json.RawMessage) (time.Duration, string) {
	s := strings.TrimSpace(string(raw))
	if unq, err := strconv.Unquote(s); err == nil {
		s = strings.TrimSpace(unq)
	}
	var secs float64
	if s != "" && s != "null" {
		var err error
		secs, err = strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(secs) || secs < 0 {
			return 0, "an unusable expires_in (negative or not a number)"
		}
	}
	if secs < 1 {
		if p.cfg.TokenTTL > 0 {
			return p.cfg.TokenTTL, ""
		}
		return 0, "without expires_in, and the provider sets no token_ttl to assume"
	}
	if secs >= MaxLifetime.Seconds() {
		return MaxLifetime, ""
	}
	return time.Duration(secs) * time.Second, ""
}

// ClientCredentials returns the client id and secret of a connection: its
// inputFields' (client_id/client_secret or clientId/clientSecret), each
// falling back to the provider's; a permanent failure when either is
// missing.
func (p *Provider) ClientCredentials(inputFields []byte) (id, secret string, err error) {
	return p.client(inputFields)
}
