package registry

import (
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/clientcredentials"
	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
)

// kinds are the provider kinds, one line each, in the order errors list
// them. A kind is whole in its package (provider.Kind): a new one is its
// package and a line here.
var kinds = []provider.Kind{
	ajio.Kind,
	oauth2refresh.Kind,
	unicommerce.Kind,
	httptoken.Kind,
	clientcredentials.Kind,
}

// kindOf is the kind named name.
func kindOf(name string) (provider.Kind, bool) {
	i := slices.IndexFunc(kinds, func(k provider.Kind) bool { return k.Name == name })
	if i < 0 {
		return provider.Kind{}, false
	}
	return kinds[i], true
}

// kindList names the kinds in errors: "ajio, oauth2_refresh, unicommerce,
// http_token or oauth2_client_credentials".
var kindList = func() string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Name
	}
	last := len(names) - 1
	return strings.Join(names[:last], ", ") + " or " + names[last]
}()

// kindKeys are the keys some kind takes (provider.Kind.Keys), each with the
// index of its Entry field, in Entry's order: the keys that may not apply
// to an entry's kind.
var kindKeys = func() []kindKey {
	var out []kindKey
	t := reflect.TypeOf(Entry{})
	for i := 0; i < t.NumField(); i++ {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		for _, kind := range kinds {
			if slices.Contains(kind.Keys, k) {
				out = append(out, kindKey{k, i})
				break
			}
		}
	}
	return out
}()

type kindKey struct {
	key   string
	field int // in Entry
}

// foreignKey returns the first key set on the entry (not empty) that its
// kind does not take, or "": a token_url on a unicommerce entry, or a
// client_secret on an ajio one, is a mistake that would otherwise be
// silently ignored.
func (e *Entry) foreignKey(k provider.Kind) string {
	v := reflect.ValueOf(e).Elem()
	for _, f := range kindKeys {
		if !v.Field(f.field).IsZero() && !slices.Contains(k.Keys, f.key) {
			return f.key
		}
	}
	return ""
}

// settings are the entry as its kind reads it.
func (e *Entry) settings() provider.Settings {
	s := provider.Settings{
		Kind: e.Kind, IntegrationType: e.IntegrationType,
		BaseURL: e.BaseURL, TokenURL: e.TokenURL,
		TokenTTL: e.TTL(), RefreshBefore: e.Before(), Timeout: time.Duration(e.Timeout),
		AllowInsecureHTTP: e.insecureHTTP(), AllowInlineSecrets: e.AllowInlineSecrets,
		ClientID: e.ClientID, ClientSecret: e.ClientSecret, ClientSecretEnv: e.ClientSecretEnv, BodyFormat: e.BodyFormat,
		Name: e.Marketplace, Request: node(&e.Request), Response: node(&e.Response),
		ClientAuth: e.ClientAuth, Scope: e.Scope, Audience: e.Audience, ExtraParams: e.ExtraParams,
	}
	if e.Spec != nil {
		s.Decoded = e.Spec
	}
	return s
}

// take keeps what the kind's Defaults and Check set in s.
func (e *Entry) take(s provider.Settings) {
	e.BaseURL, e.TokenURL = s.BaseURL, s.TokenURL
	e.TokenTTL, e.RefreshBefore, e.Timeout = Duration(s.TokenTTL), Duration(s.RefreshBefore), Duration(s.Timeout)
	e.ClientID, e.ClientSecret, e.ClientSecretEnv, e.BodyFormat = s.ClientID, s.ClientSecret, s.ClientSecretEnv, s.BodyFormat
	e.Marketplace = s.Name
	e.ClientAuth, e.Scope, e.Audience, e.ExtraParams = s.ClientAuth, s.Scope, s.Audience, s.ExtraParams
	if spec, ok := s.Decoded.(*httptoken.Spec); ok {
		e.Spec = spec
	}
}

// node is n, or nil when the key is absent.
func node(n *yaml.Node) *yaml.Node {
	if n.Kind == 0 {
		return nil
	}
	return n
}
