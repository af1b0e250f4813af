package httptoken

import (
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Spec is the declarative part of an http_token entry of the providers
// file: its request and response keys.
type Spec struct {
	Request  Request
	Response Response
}

// Request says how the token call is made. Nothing in it is a template: a
// value reaches only inputFields, the refresh token or a constant.
type Request struct {
	// Method is GET or POST.
	Method string `yaml:"method"`
	// Path is appended to the entry's base_url, as written (a constant).
	Path string `yaml:"path"`
	// Body is json, form or none (GET: none).
	Body string `yaml:"body"`
	// Fields are the body's fields (json or form), by name.
	Fields map[string]Value `yaml:"fields"`
	// Query are the query parameters, by name. A credential here makes the
	// URL a secret: provider.Do never names it with its query.
	Query map[string]Value `yaml:"query"`
	// Headers are static headers (never quoted in an error or a log).
	Headers map[string]string `yaml:"headers"`
}

// SpendsRefreshToken reports whether the request sends the connection's
// refresh token (a field or query parameter mapped with refresh_token:
// true): a new one in the answer then replaces the credential.
func (r Request) SpendsRefreshToken() bool {
	for _, m := range []map[string]Value{r.Fields, r.Query} {
		for _, v := range m {
			if v.RefreshToken {
				return true
			}
		}
	}
	return false
}

// Value is where one request field comes from: exactly one of a named
// inputFields key (a required, non-empty string), the connection's refresh
// token, or a constant.
type Value struct {
	Input        string  `yaml:"input"`
	RefreshToken bool    `yaml:"refresh_token"`
	Const        *string `yaml:"const"`
}

// Response says where the answer keeps its parts, as JSON paths: dotted
// object keys (data.auth.token), a number for an array index.
type Response struct {
	// Success is the flag whose value means success; without it a 2xx
	// answer with an access token is a success.
	Success *Success `yaml:"success"`
	// AccessToken is a path, or a list of paths tried in order (the first
	// non-empty string wins).
	AccessToken Paths `yaml:"access_token"`
	// RefreshToken is optional; when the answer carries one it is stored
	// with the access token.
	RefreshToken Paths  `yaml:"refresh_token"`
	Expiry       Expiry `yaml:"expiry"`
	// Rejected are the answers that mean the credentials were rejected
	// (permanent), whatever the HTTP status unless a rule says otherwise.
	Rejected []Rule `yaml:"rejected"`
	// ServerFailure are the answers that mean a failure on the
	// marketplace's side (transient), whatever the HTTP status.
	ServerFailure []Rule `yaml:"server_failure"`
}

// Success is the success flag: the value at Path equals Equals (a JSON
// boolean, number or string of the same type; strings compare without
// case and surrounding blanks).
type Success struct {
	Path   string `yaml:"path"`
	Equals any    `yaml:"equals"`
}

// Rule is a conjunction: every condition it sets must hold.
type Rule struct {
	// Success: true holds when the success flag says success, false when
	// the flag is present, of the success value's JSON type, and says
	// anything else.
	Success *bool `yaml:"success"`
	// Path with exactly one of Equals (any of these values), Codes (a
	// number or numeric string in one of these classes: "4xx", "429") or
	// Absent (missing or null).
	Path   string   `yaml:"path"`
	Equals []any    `yaml:"equals"`
	Codes  []string `yaml:"codes"`
	Absent bool     `yaml:"absent"`
	// HTTPStatus limits the rule to these HTTP statuses ("2xx", "401").
	HTTPStatus []string `yaml:"http_status"`
}

// Expiry is exactly one of: ExpiresIn, the path of the token's
// seconds-to-live (a number or numeric string; absent or 0 falls back to
// the entry's token_ttl when it sets one); ExpiresAt with Layout, the path
// of an absolute expiry time; or TokenTTL, the entry's token_ttl from the
// moment the token was asked for.
type Expiry struct {
	ExpiresIn string `yaml:"expires_in"`
	ExpiresAt string `yaml:"expires_at"`
	// Layout of ExpiresAt: RFC3339, RFC1123, unix (seconds), unix_ms, or a
	// Go time layout (a layout without a zone is read as UTC).
	Layout   string `yaml:"layout"`
	TokenTTL bool   `yaml:"token_ttl"`
}

// Paths is one JSON path or a list of them.
type Paths []string

// UnmarshalYAML implements yaml.Unmarshaler: a scalar or a sequence.
func (p *Paths) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*p = Paths{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a JSON path or a list of them", n.Line)
	}
	*p = s
	return nil
}

// Decode reads the request and response keys of an entry (either may be
// nil) strictly: every problem is one line naming the key, and all are
// returned. ttl is the entry's token_ttl (0 when it sets none).
func Decode(request, response *yaml.Node, ttl time.Duration) (Spec, []string) {
	var s Spec
	var problems []string
	for _, part := range []struct {
		key  string
		node *yaml.Node
		into any
	}{{"request", request, &s.Request}, {"response", response, &s.Response}} {
		if part.node == nil {
			problems = append(problems, part.key+" is missing")
			continue
		}
		keys := unknownKeys(part.node, reflect.TypeOf(part.into).Elem(), part.key)
		problems = append(problems, keys...)
		if len(keys) > 0 {
			continue
		}
		if err := part.node.Decode(part.into); err != nil {
			msg := strings.TrimSpace(strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n", " "), "yaml: unmarshal errors:"))
			problems = append(problems, fmt.Sprintf("%s: %s", part.key, goTypes.ReplaceAllString(msg, "into $1")))
		}
	}
	if len(problems) > 0 {
		return s, problems
	}
	return s, s.check(ttl)
}

// unknownKeys lists the keys of n that t has no field for, with their
// line, walking into nested structs, maps of structs and lists.
func unknownKeys(n *yaml.Node, t reflect.Type, at string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
				fields[tag] = t.Field(i).Type
				known = append(known, tag)
			}
		}
		sort.Strings(known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				out = append(out, fmt.Sprintf("%s: unknown key %q (line %d; known: %s)", at, k.Value, k.Line, strings.Join(known, ", ")))
				continue
			}
			out = append(out, unknownKeys(v, ft, at+"."+k.Value)...)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			out = append(out, unknownKeys(n.Content[i+1], t.Elem(), at+"."+n.Content[i].Value)...)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, c := range n.Content {
			out = append(out, unknownKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return out
}

var (
	goTypes     = regexp.MustCompile(`into (?:\[\])?(?:map\[string\])?(?:httptoken\.)?(\w+)`)
	codeClass   = regexp.MustCompile(`^[1-5]([0-9]{2}|xx)$`)
	placeholder = regexp.MustCompile(`\{[^}]*\}|\$\{|\$[A-Za-z_]|%[sv]|<[^>]+>|/:[A-Za-z_]`)
	pathSegment = regexp.MustCompile(`^[A-Za-z0-9_\-@$]+$`)
)

// Layouts are the names Layout accepts beside a Go layout.
var Layouts = map[string]string{"RFC3339": time.RFC3339, "RFC1123": time.RFC1123}

// check is the strict validation of a decoded spec: one line per mistake.
func (s *Spec) check(ttl time.Duration) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	r, a := &s.Request, &s.Response

	switch r.Method {
	case http.MethodGet, http.MethodPost:
	case "":
		bad("request.method is missing (GET or POST)")
	default:
		bad("request.method must be GET or POST, not %q", r.Method)
	}
	switch r.Body {
	case "json", "form", "none":
	case "":
		bad("request.body is missing (json, form or none)")
	default:
		bad("request.body must be json, form or none, not %q", r.Body)
	}
	if r.Method == http.MethodGet && (r.Body == "json" || r.Body == "form") {
		bad("request.body %s contradicts request.method GET: a GET carries no body (use query, or POST)", r.Body)
	}
	if r.Body == "none" && len(r.Fields) > 0 {
		bad("request.fields are set but request.body is none: they would never be sent")
	}
	if (r.Body == "json" || r.Body == "form") && len(r.Fields) == 0 {
		bad("request.body is %s but request.fields is empty", r.Body)
	}
	if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
		bad("request.path must start with /")
	}
	if placeholder.MatchString(r.Path) || strings.ContainsAny(r.Path, "?#") {
		bad("request.path %q holds a placeholder or a query: a credential mapped into the URL path would be kept by every proxy and access log; the path is a constant, map credentials in request.fields (or request.query)", r.Path)
	}
	mapped := 0
	for _, part := range []struct {
		key string
		m   map[string]Value
	}{{"request.fields", r.Fields}, {"request.query", r.Query}} {
		for _, name := range sortedKeys(part.m) {
			v := part.m[name]
			n := 0
			if v.Input != "" {
				n++
			}
			if v.RefreshToken {
				n++
			}
			if v.Const != nil {
				n++
			}
			switch {
			case n == 0:
				bad("%s.%s maps nothing: set one of input, refresh_token: true or const", part.key, name)
			case n > 1:
				bad("%s.%s is contradictory: set only one of input, refresh_token: true or const", part.key, name)
			}
			if name == "" {
				bad("%s has an empty name", part.key)
			}
			if v.Input != "" || v.RefreshToken {
				mapped++
			}
		}
	}
	for name := range r.Fields {
		if _, ok := r.Query[name]; ok {
			bad("request.fields.%s and request.query.%s are contradictory: one parameter, two places", name, name)
		}
	}
	for _, h := range sortedKeys(r.Headers) {
		if strings.EqualFold(h, "Content-Type") && r.Body != "none" {
			bad("request.headers.%s contradicts request.body %s, which sets it", h, r.Body)
		}
		if strings.EqualFold(h, "Host") || strings.EqualFold(h, "Content-Length") {
			bad("request.headers.%s cannot be set", h)
		}
	}

	// Response paths.
	scalars := map[string]string{} // path → the key that reads a value there
	path := func(key, p string) {
		if p == "" {
			bad("%s is an empty path", key)
			return
		}
		for _, seg := range strings.Split(p, ".") {
			if !pathSegment.MatchString(seg) {
				bad("%s %q is a path into nothing (an empty or malformed segment; write keys joined by dots, like data.auth.token)", key, p)
				return
			}
		}
		if _, ok := scalars[p]; !ok {
			scalars[p] = key
		}
	}
	if a.Success != nil {
		path("response.success.path", a.Success.Path)
		if !scalar(a.Success.Equals) {
			bad("response.success.equals must be a boolean, number or string")
		}
	}
	if len(a.AccessToken) == 0 {
		bad("response.access_token is missing")
	}
	for i, p := range a.AccessToken {
		path(fmt.Sprintf("response.access_token[%d]", i), p)
	}
	for i, p := range a.RefreshToken {
		path(fmt.Sprintf("response.refresh_token[%d]", i), p)
	}
	e := a.Expiry
	modes := 0
	for _, set := range []bool{e.ExpiresIn != "", e.ExpiresAt != "", e.TokenTTL} {
		if set {
			modes++
		}
	}
	switch {
	case modes == 0:
		bad("response.expiry is missing: set expires_in (a path), expires_at (a path, with layout) or token_ttl: true")
	case modes > 1:
		bad("response.expiry is contradictory: set only one of expires_in, expires_at or token_ttl: true")
	}
	if e.ExpiresIn != "" {
		path("response.expiry.expires_in", e.ExpiresIn)
	}
	if e.ExpiresAt != "" {
		path("response.expiry.expires_at", e.ExpiresAt)
		if e.Layout == "" {
			bad("response.expiry.layout is missing: how expires_at is written (RFC3339, unix, unix_ms or a Go layout)")
		} else if !validLayout(e.Layout) {
			bad("response.expiry.layout %q is not RFC3339, RFC1123, unix, unix_ms or a Go layout (written with 2006-01-02 15:04:05)", e.Layout)
		}
	} else if e.Layout != "" {
		bad("response.expiry.layout is set without expires_at")
	}
	if e.TokenTTL && ttl <= 0 {
		bad("response.expiry.token_ttl is true but the entry sets no token_ttl")
	}

	type seen struct{ key, class string }
	values := map[string]seen{} // path + "=" + value → the rule that named it
	for _, group := range []struct {
		key, class string
		rules      []Rule
	}{{"response.server_failure", "transient", a.ServerFailure}, {"response.rejected", "permanent", a.Rejected}} {
		for i, rule := range group.rules {
			key := fmt.Sprintf("%s[%d]", group.key, i)
			if rule.Success != nil && a.Success == nil {
				bad("%s.success needs response.success (the flag it tests)", key)
			}
			if rule.Success != nil && *rule.Success && rule.Path == "" {
				bad("%s is contradictory: success: true alone says the answer succeeded", key)
			}
			tests := 0
			for _, set := range []bool{len(rule.Equals) > 0, len(rule.Codes) > 0, rule.Absent} {
				if set {
					tests++
				}
			}
			switch {
			case rule.Path == "" && tests > 0:
				bad("%s tests a value but names no path", key)
			case rule.Path != "" && tests == 0:
				bad("%s names a path but no test (equals, codes or absent)", key)
			case tests > 1:
				bad("%s is contradictory: set only one of equals, codes or absent", key)
			case rule.Path == "" && rule.Success == nil:
				bad("%s matches every answer (no path, no success)", key)
			}
			if rule.Path != "" {
				path(key+".path", rule.Path)
			}
			for _, v := range rule.Equals {
				if !scalar(v) {
					bad("%s.equals holds a value that is not a boolean, number or string", key)
					continue
				}
				k := rule.Path + "=" + strings.ToLower(fmt.Sprint(v))
				if prev, ok := values[k]; ok && prev.class != group.class {
					bad("%s and %s are contradictory: %s = %v is both %s and %s", prev.key, key, rule.Path, v, prev.class, group.class)
				}
				values[k] = seen{key, group.class}
				if a.Success != nil && rule.Path == a.Success.Path && equal(v, a.Success.Equals) {
					bad("%s contradicts response.success: %s = %v means success", key, rule.Path, v)
				}
			}
			for _, c := range append(slices.Clone(rule.Codes), rule.HTTPStatus...) {
				if !codeClass.MatchString(c) {
					bad("%s: %q is not a status code or class (like 401, 4xx, 5xx)", key, c)
				}
			}
			for _, c := range rule.Codes {
				k := rule.Path + "#" + c
				if prev, ok := values[k]; ok && prev.class != group.class {
					bad("%s and %s are contradictory: %s code %s is both %s and %s", prev.key, key, rule.Path, c, prev.class, group.class)
				}
				values[k] = seen{key, group.class}
			}
		}
	}
	// A path through a value another key reads as a scalar goes nowhere.
	for p, key := range scalars {
		for q, other := range scalars {
			if strings.HasPrefix(p, q+".") {
				bad("%s %q is a path into nothing: %s reads %q as a single value", key, p, other, q)
			}
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func scalar(v any) bool {
	switch v.(type) {
	case bool, int, int64, uint64, float64, string:
		return true
	}
	return false
}

func validLayout(l string) bool {
	if _, ok := Layouts[l]; ok || l == "unix" || l == "unix_ms" {
		return true
	}
	return strings.Contains(l, "2006") && strings.Contains(l, "15") || strings.Contains(l, "2006-01-02")
}

// UsesSecretQuery reports whether a credential (an inputFields value or the
// refresh token) travels in the query string.
func (s *Spec) UsesSecretQuery() bool {
	for _, v := range s.Request.Query {
		if v.Input != "" || v.RefreshToken {
			return true
		}
	}
	return false
}
