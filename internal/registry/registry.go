// Package registry turns the providers file (or its default) into the
// configured marketplace flows: one entry per integration type, validated at
// start-up so a bad entry stops the process with a line naming it.
package registry

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"regexp"
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
	"github.com/eshopbox/token-refresher/internal/token"
)

// The names of the built-in provider kinds, one per token flow, for
// callers that write an entry in Go. Each kind is whole in its package
// (ajio.Kind, ...); the registry lists them in one table (kinds), and a new
// kind needs no name here.
const (
	KindAjio          = ajio.KindName
	KindOAuth2Refresh = oauth2refresh.KindName
	KindUnicommerce   = unicommerce.KindName
	// KindHTTPToken is a login-style token API declared in the entry
	// (package httptoken).
	KindHTTPToken = httptoken.KindName
	// KindClientCredentials is the OAuth 2.0 client credentials grant
	// (RFC 6749 §4.4, package clientcredentials).
	KindClientCredentials = clientcredentials.KindName
)

// Duration is a time.Duration written as "30m" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 30s, 10m, 24h)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Entry is one provider of the providers file.
type Entry struct {
	IntegrationType string   `yaml:"integration_type"`
	Kind            string   `yaml:"kind"`
	BaseURL         string   `yaml:"base_url"`
	TokenURL        string   `yaml:"token_url"`
	TokenTTL        Duration `yaml:"token_ttl"`
	RefreshBefore   Duration `yaml:"refresh_before"`
	Timeout         Duration `yaml:"timeout"`
	// RateLimitPerSecond caps calls to this marketplace across all
	// refresher replicas; 0 means no limit.
	RateLimitPerSecond float64 `yaml:"rate_limit_per_second"`
	// ClientID and ClientSecret are the oauth2_refresh fallback when a
	// connection's inputFields carry none. ClientSecretEnv names an
	// environment variable holding the secret, to keep it out of the file.
	ClientID        string `yaml:"client_id"`
	ClientSecret    string `yaml:"client_secret"`
	ClientSecretEnv string `yaml:"client_secret_env"`
	// BodyFormat of the oauth2_refresh request: "form" (RFC 6749, default)
	// or "json".
	BodyFormat string `yaml:"body_format"`

	// Marketplace is the file's name: key: how an http_token entry's
	// reasons and logs name the marketplace (a short word; default
	// "integration type N marketplace"). Label is how errors name the entry.
	Marketplace string `yaml:"name"`
	// Request and Response are an http_token entry's declaration
	// (httptoken.Spec), decoded strictly by validate into Spec.
	Request  yaml.Node       `yaml:"request"`
	Response yaml.Node       `yaml:"response"`
	Spec     *httptoken.Spec `yaml:"-"`

	// ClientAuth (body or basic), Scope, Audience and ExtraParams are an
	// oauth2_client_credentials entry's request.
	ClientAuth  string            `yaml:"client_auth"`
	Scope       string            `yaml:"scope"`
	Audience    string            `yaml:"audience"`
	ExtraParams map[string]string `yaml:"extra_params"`

	// AllowInsecureHTTP accepts an http:// base_url or token_url to a host
	// that is not loopback (httpurl.Secure), which is refused otherwise:
	// the seller's password or the client secret would cross the network
	// in clear.
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`
	// AllowInlineSecrets accepts a client_secret written in the file,
	// which is refused otherwise (client_secret_env is the way), and
	// silences the warning about static headers and constants that look
	// like secrets (InlineSecrets).
	AllowInlineSecrets bool `yaml:"allow_inline_secrets"`
	// baseFromEnv: base_url is the caller's ajioBaseURL (AJIO_BASE_URL),
	// whose http:// the caller checks (AJIO_ALLOW_INSECURE_HTTP).
	baseFromEnv bool
}

// insecureHTTP says whether the entry's URLs may be http:// to a host that
// is not loopback: allow_insecure_http, or a base URL from AJIO_BASE_URL,
// which the caller checked (AJIO_ALLOW_INSECURE_HTTP).
func (e Entry) insecureHTTP() bool { return e.AllowInsecureHTTP || e.baseFromEnv }

// TTL is the entry's token lifetime.
func (e Entry) TTL() time.Duration { return time.Duration(e.TokenTTL) }

// Before is how long before expiry the entry's tokens are due.
func (e Entry) Before() time.Duration { return time.Duration(e.RefreshBefore) }

// Target is the entry as the scan, the census and the refresh see it.
func (e Entry) Target() token.Target {
	return token.Target{IntegrationType: e.IntegrationType, Kind: e.Kind, RefreshBefore: e.Before(), Lifetime: e.fixedLifetime()}
}

// IgnoresRefreshToken reports whether the entry's token call never sends
// the connection's refresh token: its login is inputFields (ajio,
// unicommerce), or its client's own credentials (client credentials), or
// an http_token request that maps no refresh_token. A refresh token such a
// marketplace answers with is stored, but it is no credential of the
// product's: losing it before it is stored costs one more call, not the
// connection.
func (e Entry) IgnoresRefreshToken() bool {
	k, ok := kindOf(e.Kind)
	return ok && !spends(k, e)
}

// SpendsRefreshToken reports whether the entry's call sends the
// connection's refresh token (oauth2_refresh, or an http_token entry that
// maps refresh_token): a server that rotates refresh tokens retires the one
// sent, so a call whose answer is not stored loses the connection's grant.
func (e Entry) SpendsRefreshToken() bool {
	k, ok := kindOf(e.Kind)
	return ok && spends(k, e)
}

func spends(k provider.Kind, e Entry) bool {
	if k.SpendsRefreshToken == nil {
		return false
	}
	s := e.settings()
	return k.SpendsRefreshToken(&s)
}

// fixedLifetime is the lifetime of every token of a kind whose answers
// carry none (provider.Kind.FixedLifetime: ajio, unicommerce; the token
// expires token_ttl after it was obtained); zero for the kinds whose
// answers may say (expires_in), where token_ttl is only a fallback.
func (e Entry) fixedLifetime() time.Duration {
	if k, ok := kindOf(e.Kind); ok && k.FixedLifetime {
		return e.TTL()
	}
	return 0
}

// Targets are the entries' targets, in order.
func Targets(entries []Entry) []token.Target {
	out := make([]token.Target, len(entries))
	for i, e := range entries {
		out[i] = e.Target()
	}
	return out
}

// Label is how errors and logs name the entry: provider "ajio"
// (integration_type "16"). (The file's name: key is Marketplace.)
func (e Entry) Label() string { return provider.Label(e.Kind, e.IntegrationType) }

type file struct {
	Providers []Entry `yaml:"providers"`
}

// Defaults are the built-in providers used without a providers file:
// integration type 16 (Ajio Dropship) → ajio.
func Defaults(ajioBaseURL string) []Entry {
	e := Entry{IntegrationType: "16", Kind: KindAjio, BaseURL: ajioBaseURL, baseFromEnv: ajioBaseURL != ""}
	e.applyDefaults()
	return []Entry{e}
}

// Load reads and validates a providers file. ajioBaseURL, when set,
// overrides the base URL of every ajio entry that names none; the caller
// has checked it, http:// included (config: AJIO_ALLOW_INSECURE_HTTP), and
// such an entry takes its allowance. getenv
// (os.Getenv in cmd/, required) reads the variables client_secret_env
// names, to check they are set.
func Load(path, ajioBaseURL string, getenv func(string) string) ([]Entry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b, ajioBaseURL, getenv)
}

// Parse is Load of the file's content. Unknown keys are errors: a typo must
// not silently fall back to a default. An error about an entry names it by
// its place and integration type, "providers[1] (integration_type "42")",
// and an unknown key comes with the nearest known one ("did you mean
// token_ttl?").
func Parse(b []byte, ajioBaseURL string, getenv func(string) string) ([]Entry, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, decodeError(err)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("not a valid providers file: it is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a valid providers file: line %d: expected a mapping with a providers list", root.Line)
	}
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "providers" {
			return nil, fmt.Errorf("not a valid providers file: line %d: unknown key %s%s", k.Line, k.Value, suggest(k.Value, []string{"providers"}))
		}
		if list != nil {
			return nil, fmt.Errorf("not a valid providers file: line %d: providers is given twice", k.Line)
		}
		list = root.Content[i+1]
	}
	if list == nil || (list.Kind == yaml.ScalarNode && list.Tag == "!!null") {
		return nil, errors.New("lists no providers")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("not a valid providers file: line %d: providers must be a list", list.Line)
	}
	if len(list.Content) == 0 {
		return nil, errors.New("lists no providers")
	}
	entries := make([]Entry, len(list.Content))
	for i, n := range list.Content {
		if err := decodeEntry(n, &entries[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", entryRef(i, n), err)
		}
	}
	seen := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		if e.Kind == KindAjio && e.BaseURL == "" && ajioBaseURL != "" {
			e.BaseURL = ajioBaseURL
			e.baseFromEnv = true
		}
		e.applyDefaults()
		if err := e.validate(getenv); err != nil {
			return nil, entryError(i, err)
		}
		if seen[e.IntegrationType] {
			return nil, fmt.Errorf("providers[%d]: integration_type %q is listed twice", i, e.IntegrationType)
		}
		seen[e.IntegrationType] = true
	}
	return entries, nil
}

// entryKeys are the keys an entry may have: Entry's yaml tags.
var entryKeys = func() []string {
	t := reflect.TypeOf(Entry{})
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}()

// decodeEntry decodes one list item, refusing unknown keys.
func decodeEntry(n *yaml.Node, e *Entry) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: an entry must be a mapping of keys (integration_type, kind, ...)", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !slices.Contains(entryKeys, k.Value) {
			return fmt.Errorf("line %d: unknown key %s%s", k.Line, k.Value, suggest(k.Value, entryKeys))
		}
	}
	if err := n.Decode(e); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msgs := make([]string, len(te.Errors))
			for i, m := range te.Errors {
				msgs[i] = typeMismatch.ReplaceAllStringFunc(m, plainMismatch)
			}
			return errors.New(strings.Join(msgs, "; "))
		}
		return errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
	}
	return nil
}

// typeMismatch is yaml.v3's wording of a value of the wrong type, which
// names Go types an operator does not know.
var typeMismatch = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*` )?into ([\\w.]+)")

func plainMismatch(m string) string {
	sub := typeMismatch.FindStringSubmatch(m)
	value := strings.TrimSpace(sub[2])
	if value == "" {
		value = "this value"
		if v, ok := map[string]string{"seq": "a list", "map": "a mapping"}[sub[1]]; ok {
			value = v
		}
	}
	switch {
	case strings.HasPrefix(sub[3], "float") || strings.HasPrefix(sub[3], "int"):
		return value + " is not a number"
	case sub[3] == "string":
		return value + " is not a single value"
	default:
		return value + " is not valid here"
	}
}

// entryRef names entry i of the list: its place and, when it has one, its
// integration type, read from the node so even an entry that fails to
// decode is named.
func entryRef(i int, n *yaml.Node) string {
	ref := fmt.Sprintf("providers[%d]", i)
	if n.Kind == yaml.MappingNode {
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "integration_type" && n.Content[j+1].Kind == yaml.ScalarNode {
				ref += fmt.Sprintf(" (integration_type %q)", n.Content[j+1].Value)
			}
		}
	}
	return ref
}

// suggest returns " (did you mean k?)" for the known key k nearest to key,
// when it is near enough to be a typo (at most a third of its letters
// changed), else "".
func suggest(key string, known []string) string {
	best, bestD := "", -1
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(1, len(best)/3) {
		return ""
	}
	return " (did you mean " + best + "?)"
}

// editDistance is the Levenshtein distance of a and b, counting a swap of
// two neighbouring letters as one edit (optimal string alignment), the
// commonest typo.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// entryError prefixes every line of an entry's error with its index: an
// http_token entry reports each of its mistakes on a line of its own.
func entryError(i int, err error) error {
	lines := strings.Split(err.Error(), "\n")
	for j, l := range lines {
		lines[j] = fmt.Sprintf("providers[%d]: %s", i, l)
	}
	return errors.New(strings.Join(lines, "\n"))
}

// decodeError makes a YAML syntax error one line.
func decodeError(err error) error {
	return fmt.Errorf("not a valid providers file: %s", strings.ReplaceAll(err.Error(), "\n", " "))
}

// applyDefaults fills what the entry leaves out: its kind's Defaults, then
// a timeout of 10 s.
func (e *Entry) applyDefaults() {
	if k, ok := kindOf(e.Kind); ok {
		s := e.settings()
		k.Defaults(&s)
		e.take(s)
	}
	if e.Timeout == 0 {
		e.Timeout = Duration(10 * time.Second)
	}
}

// validate checks the entry after applyDefaults: the keys every entry has,
// the keys its kind does not take, then its kind's Check (each line of
// which names the entry).
func (e *Entry) validate(getenv func(string) string) error {
	if e.IntegrationType == "" {
		return errors.New("integration_type is missing")
	}
	k, ok := kindOf(e.Kind)
	switch {
	case e.Kind == "":
		return fmt.Errorf("integration_type %q: kind is missing (%s)", e.IntegrationType, kindList)
	case !ok:
		return fmt.Errorf("integration_type %q: unknown kind %q (%s)", e.IntegrationType, e.Kind, kindList)
	}
	if key := e.foreignKey(k); key != "" {
		return fmt.Errorf("%s: %s does not apply to kind %s", e.Label(), key, e.Kind)
	}
	s := e.settings()
	if lines := k.Check(&s, getenv); len(lines) > 0 {
		for i, l := range lines {
			lines[i] = e.Label() + ": " + l
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	e.take(s)
	if k.FixedLifetime {
		if e.TokenTTL <= 0 {
			return fmt.Errorf("%s: token_ttl must be positive", e.Label())
		}
		if e.RefreshBefore >= e.TokenTTL {
			return fmt.Errorf("%s: refresh_before (%s) must be shorter than token_ttl (%s), or every token is due on every scan",
				e.Label(), e.Before(), e.TTL())
		}
	}
	if e.RefreshBefore <= 0 {
		return fmt.Errorf("%s: refresh_before must be positive", e.Label())
	}
	if e.Timeout <= 0 {
		return fmt.Errorf("%s: timeout must be positive", e.Label())
	}
	if e.RateLimitPerSecond < 0 {
		return fmt.Errorf("%s: rate_limit_per_second must not be negative", e.Label())
	}
	return nil
}

// Build returns the client of an entry, sharing client for HTTP: its
// kind's New. An entry's client_secret_env is read there with getenv
// (os.Getenv in cmd/), so the secret is only ever held by the client.
func Build(e Entry, client *http.Client, getenv func(string) string) (token.Provider, error) {
	k, ok := kindOf(e.Kind)
	if !ok {
		return nil, fmt.Errorf("%s: unknown kind", e.Label())
	}
	return k.New(e.settings(), client, getenv)
}
