package registry

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/provider/clientcredentials"
	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/token"
)

// kindList names the kinds in errors.
const kindList = "ajio, oauth2_refresh, unicommerce, http_token or oauth2_client_credentials"

// entryError prefixes every line of an entry's error with its index: an
// http_token entry reports each of its mistakes on a line of its own.
func entryError(i int, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for j, l := range lines {
		lines[j] = fmt.Sprintf("providers[%d]: %s", i, l)
	}
	return errors.New(strings.Join(lines, "\n"))
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,40}$`)

// declarativeKeys rejects the keys of the two declarative kinds on entries
// of another kind, and the keys that mean nothing to them.
func (e *Entry) declarativeKeys() error {
	keys := []struct {
		key   string
		set   bool
		kinds []string // the kinds the key applies to
	}{
		{"name", e.Marketplace != "", []string{KindHTTPToken}},
		{"request", e.Request.Kind != 0, []string{KindHTTPToken}},
		{"response", e.Response.Kind != 0, []string{KindHTTPToken}},
		{"client_auth", e.ClientAuth != "", []string{KindClientCredentials}},
		{"scope", e.Scope != "", []string{KindClientCredentials}},
		{"audience", e.Audience != "", []string{KindClientCredentials}},
		{"extra_params", e.ExtraParams != nil, []string{KindClientCredentials}},
		{"base_url", e.BaseURL != "", []string{KindAjio, KindUnicommerce, KindHTTPToken}},
		{"token_url", e.TokenURL != "", []string{KindOAuth2Refresh, KindClientCredentials}},
		{"client_id", e.ClientID != "", []string{KindOAuth2Refresh, KindClientCredentials}},
		{"client_secret", e.ClientSecret != "", []string{KindOAuth2Refresh, KindClientCredentials}},
		{"client_secret_env", e.ClientSecretEnv != "", []string{KindOAuth2Refresh, KindClientCredentials}},
		{"body_format", e.BodyFormat != "", []string{KindOAuth2Refresh, KindClientCredentials}},
	}
	switch e.Kind {
	case KindAjio, KindUnicommerce, KindOAuth2Refresh, KindHTTPToken, KindClientCredentials:
	default:
		return nil // the kind itself is reported
	}
	for _, k := range keys {
		ok := false
		for _, kind := range k.kinds {
			ok = ok || kind == e.Kind
		}
		if k.set && !ok {
			return fmt.Errorf("%s: %s does not apply to kind %s", e.label(), k.key, e.Kind)
		}
	}
	return nil
}

// label is Name() for the declarative kinds (whose Name field is the
// marketplace's name).
func (e *Entry) label() string {
	return fmt.Sprintf("provider %q (integration_type %q)", e.Kind, e.IntegrationType)
}

func (e *Entry) declarativeDefaults() {
	if e.RefreshBefore == 0 {
		e.RefreshBefore = Duration(10 * time.Minute)
	}
	if e.Kind == KindClientCredentials {
		if e.BodyFormat == "" {
			e.BodyFormat = oauth2refresh.FormatForm
		}
		if e.ClientAuth == "" {
			e.ClientAuth = clientcredentials.AuthBody
		}
	}
}

// validateHTTPToken decodes and checks the declaration: every mistake is a
// line of its own, naming the entry.
func (e *Entry) validateHTTPToken() error {
	var lines []string
	if e.Marketplace != "" && !safeName.MatchString(e.Marketplace) {
		lines = append(lines, "name must be a short word (letters, digits, _.-)")
	}
	if e.TokenTTL < 0 {
		lines = append(lines, "token_ttl must be positive")
	}
	if e.TokenTTL > 0 && e.RefreshBefore >= e.TokenTTL {
		lines = append(lines, fmt.Sprintf("refresh_before (%s) must be shorter than token_ttl (%s), or every token is due on every scan", e.Before(), e.TTL()))
	}
	spec, problems := httptoken.Decode(node(&e.Request), node(&e.Response), e.TTL())
	lines = append(lines, problems...)
	if len(lines) > 0 {
		for i, l := range lines {
			lines[i] = e.label() + ": " + l
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	e.Spec = &spec
	return nil
}

func (e *Entry) validateClientCredentials(getenv func(string) string) error {
	if e.BodyFormat != oauth2refresh.FormatForm && e.BodyFormat != oauth2refresh.FormatJSON {
		return fmt.Errorf("%s: body_format must be form or json, not %q", e.label(), e.BodyFormat)
	}
	if e.ClientAuth != clientcredentials.AuthBody && e.ClientAuth != clientcredentials.AuthBasic {
		return fmt.Errorf("%s: client_auth must be body or basic, not %q", e.label(), e.ClientAuth)
	}
	if e.ClientAuth == clientcredentials.AuthBasic && e.BodyFormat == oauth2refresh.FormatJSON {
		// Not contradictory in itself, but RFC 6749 §2.3.1 Basic goes
		// with a form body; keep to what servers implement.
		return fmt.Errorf("%s: client_auth basic goes with body_format form (RFC 6749 §2.3.1)", e.label())
	}
	for k := range e.ExtraParams {
		for _, r := range clientcredentials.Reserved {
			if strings.EqualFold(k, r) {
				return fmt.Errorf("%s: extra_params may not set %s (the grant sets it)", e.label(), r)
			}
		}
	}
	if e.TokenTTL < 0 {
		return fmt.Errorf("%s: token_ttl must be positive", e.label())
	}
	if e.TokenTTL != 0 && e.RefreshBefore >= e.TokenTTL {
		return fmt.Errorf("%s: refresh_before (%s) must be shorter than token_ttl (%s)", e.label(), e.Before(), e.TTL())
	}
	if e.ClientSecret != "" && e.ClientSecretEnv != "" {
		return fmt.Errorf("%s: set client_secret or client_secret_env, not both", e.label())
	}
	if err := e.inlineSecret(e.label()); err != nil {
		return err
	}
	if e.ClientSecretEnv != "" && getenv(e.ClientSecretEnv) == "" {
		return fmt.Errorf("%s: client_secret_env names %s, which is not set", e.label(), e.ClientSecretEnv)
	}
	return nil
}

func buildDeclarative(e Entry, client *http.Client, getenv func(string) string) (token.Provider, error) {
	timeout := time.Duration(e.Timeout)
	if e.Kind == KindHTTPToken {
		if e.Spec == nil {
			spec, problems := httptoken.Decode(node(&e.Request), node(&e.Response), e.TTL())
			if len(problems) > 0 {
				return nil, fmt.Errorf("%s: %s", e.label(), problems[0])
			}
			e.Spec = &spec
		}
		name := e.Marketplace
		if name == "" {
			name = "integration type " + e.IntegrationType + " marketplace"
		}
		return httptoken.New(httptoken.Config{Name: name, BaseURL: e.BaseURL, Spec: *e.Spec, TokenTTL: e.TTL(),
			Timeout: timeout, Client: client, AllowInsecureHTTP: e.insecureHTTP()})
	}
	secret := e.ClientSecret
	if e.ClientSecretEnv != "" {
		secret = getenv(e.ClientSecretEnv)
		if secret == "" {
			return nil, fmt.Errorf("%s: client_secret_env names %s, which is not set", e.label(), e.ClientSecretEnv)
		}
	}
	return clientcredentials.New(clientcredentials.Config{TokenURL: e.TokenURL, ClientID: e.ClientID, ClientSecret: secret,
		ClientAuth: e.ClientAuth, Scope: e.Scope, Audience: e.Audience, ExtraParams: e.ExtraParams,
		BodyFormat: e.BodyFormat, TokenTTL: e.TTL(), Timeout: timeout, Client: client, AllowInsecureHTTP: e.insecureHTTP()})
}

// node is n, or nil when the key is absent.
func node(n *yaml.Node) *yaml.Node {
	if n.Kind == 0 {
		return nil
	}
	return n
}
