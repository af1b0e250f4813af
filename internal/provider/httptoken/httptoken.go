// Package httptoken is the declarative kind http_token: a login-style token
// API described in the providers file instead of Go. An entry names the
// method, URL and body format of the call, maps each request field or query
// parameter from a named inputFields key, the refresh token or a constant
// (a mapping, not a template language), and names, as JSON paths, where the
// answer keeps its success flag, access token, optional refresh token and
// expiry (seconds-to-live, an absolute time with its layout, or the entry's
// token_ttl), and which values mean "credentials rejected" (permanent) or
// "server-side failure" (transient).
//
// Every answer is placed by one verdict table (Verdicts), the same for every
// entry, built on the rules every kind shares (provider.Answer): a 3xx is
// permanent; the entry's server_failure rules, then its rejected rules, win
// over the HTTP status; 408, 429 and 5xx are transient, other 4xx permanent;
// a 2xx HTML page, empty body or cut-short JSON is transient; anything the
// entry cannot place is unusable. Reasons never quote a body, a credential,
// a token or the query string (provider.Do names the endpoint without it).
package httptoken

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

// MaxLifetime is provider.MaxLifetime: a longer lifetime is clamped to it.
const MaxLifetime = provider.MaxLifetime

// Config of one http_token provider.
type Config struct {
	// Name is how reasons name the marketplace (a short word).
	Name string
	// BaseURL is the entry's base_url; Spec.Request.Path is appended.
	BaseURL string
	Spec    Spec
	// AllowInsecureHTTP accepts an http:// URL to a host that is not
	// loopback (the entry's allow_insecure_http); New refuses it otherwise.
	AllowInsecureHTTP bool
	TokenTTL          time.Duration
	Timeout           time.Duration
	Client            *http.Client
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Provider is an http_token client.
type Provider struct {
	cfg      Config
	endpoint url.URL // without a query
}

var _ token.Provider = (*Provider)(nil)

// New returns a client for a spec that Decode accepted.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, errors.New("http_token: an HTTP client is required")
	}
	u, err := httpurl.Plain(strings.TrimRight(cfg.BaseURL, "/") + cfg.Spec.Request.Path)
	if err != nil {
		return nil, fmt.Errorf("http_token: base_url %w", err)
	}
	if err := httpurl.Secure(u, cfg.AllowInsecureHTTP); err != nil {
		return nil, fmt.Errorf("http_token: base_url %w", err)
	}
	if cfg.Name == "" {
		cfg.Name = "marketplace"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg, endpoint: *u}, nil
}

// Endpoint is the URL called, without its query: the form fit for logs.
func (p *Provider) Endpoint() string { return provider.Redact(&p.endpoint) }

// answer is an answer as the verdict table sees it.
type answer struct {
	provider.Answer
	p    *Provider
	json map[string]any
	// server and rejected describe the first rule that matched ("" when
	// none did).
	server, rejected string
	success          bool
	access, refresh  string
	lifetime         time.Duration
	bad              string
}

func (a *answer) parsed() bool { return a.Body == provider.JSON }

func (a *answer) name() string { return a.p.cfg.Name }

// Verdicts is the http_token answer table, read top to bottom: the first
// row that matches decides. "server_failure" and "rejected" are the entry's
// own rules.
var Verdicts = []provider.Row[answer]{
	provider.Rule("HTTP 3xx", provider.Permanent,
		func(a *answer) bool { return a.Redirect() },
		func(a *answer) string { return provider.RedirectReason(a.name(), &a.Answer) }),
	provider.Rule("a server_failure rule (any HTTP status unless the rule says)", provider.Transient,
		func(a *answer) bool { return a.server != "" },
		func(a *answer) string {
			return fmt.Sprintf("%s failed on its side (%s, HTTP %d)", a.name(), a.server, a.Status)
		}),
	provider.Rule("a rejected rule (any HTTP status unless the rule says)", provider.Permanent,
		func(a *answer) bool { return a.rejected != "" },
		func(a *answer) string {
			return fmt.Sprintf("%s rejected the credentials (%s, HTTP %d)", a.name(), a.rejected, a.Status)
		}),
	provider.Rule("HTTP 408, 429, 5xx (any other body)", provider.Transient,
		func(a *answer) bool { return a.ServerTrouble() },
		func(a *answer) string { return provider.StatusReason(a.name(), &a.Answer) }),
	provider.Rule("HTTP 401, 403, other 4xx (any other body)", provider.Permanent,
		func(a *answer) bool { return a.Status >= 400 },
		func(a *answer) string { return provider.StatusReason(a.name(), &a.Answer) }),
	provider.Rule("2xx HTML, empty, truncated JSON", provider.Transient,
		func(a *answer) bool { return a.Healing() },
		func(a *answer) string { return provider.StatusReason(a.name(), &a.Answer) }),
	provider.Rule("2xx JSON, success flag holds (or none configured), access token, usable expiry", provider.Stored,
		func(a *answer) bool { return a.OK() && a.success && a.access != "" && a.bad == "" }, nil),
	provider.Rule("2xx JSON, success and access token, expiry missing, past, negative, not a number", provider.Unusable,
		func(a *answer) bool { return a.OK() && a.success && a.access != "" },
		func(a *answer) string { return fmt.Sprintf("%s answered %s", a.name(), a.bad) }),
	provider.Rule("2xx JSON, success without an access token", provider.Unusable,
		func(a *answer) bool { return a.success },
		func(a *answer) string {
			return fmt.Sprintf("%s answered success without an access token (HTTP %d)", a.name(), a.Status)
		}),
	provider.Rule("anything else (2xx garbage, a form, JSON without success)", provider.Unusable,
		provider.Always[answer],
		func(a *answer) string { return provider.StatusReason(a.name(), &a.Answer) }),
}

// Refresh makes the entry's call with the connection's inputFields (and
// refresh token, when mapped) and reads the answer.
func (p *Provider) Refresh(ctx context.Context, c token.Connection) (token.Token, error) {
	req, secrets, err := p.request(ctx, c)
	if err != nil {
		return token.Token{}, err
	}
	obtainedAt := provider.ObtainedAt(p.cfg.Now())
	resp, err := provider.Do(ctx, p.cfg.Client, req, p.cfg.Timeout)
	if err != nil {
		return token.Token{}, err
	}
	a := p.read(resp, obtainedAt, secrets)
	if row := provider.Decide(Verdicts, a); row.Verdict != provider.Stored {
		return token.Token{}, a.Fail(row.Verdict, row.Reason(a))
	}
	return token.Token{AccessToken: a.access, RefreshToken: a.refresh, ExpiresAt: obtainedAt.Add(a.lifetime)}, nil
}

// request builds the call. Its errors never quote a value: the URL may hold
// credentials.
func (p *Provider) request(ctx context.Context, c token.Connection) (*http.Request, []string, error) {
	r := &p.cfg.Spec.Request
	var fields token.Fields
	var secrets []string
	value := func(v Value) (string, error) {
		switch {
		case v.Const != nil:
			return *v.Const, nil
		case v.RefreshToken:
			rt := strings.TrimSpace(c.RefreshToken)
			if rt == "" {
				return "", token.Permanent("no refresh token stored for the connection (refreshToken is empty); it must be authorised again")
			}
			secrets = append(secrets, rt)
			return rt, nil
		}
		if fields == nil {
			f, err := token.ParseFields(c.InputFields)
			if err != nil {
				return "", err
			}
			fields = f
		}
		s, err := fields.Required(v.Input)
		if err != nil {
			return "", err
		}
		secrets = append(secrets, s)
		return s, nil
	}
	u := p.endpoint
	if len(r.Query) > 0 {
		q := url.Values{}
		for _, name := range sortedKeys(r.Query) {
			s, err := value(r.Query[name])
			if err != nil {
				return nil, nil, err
			}
			q.Set(name, s)
		}
		u.RawQuery = q.Encode()
	}
	var body []byte
	contentType := ""
	switch r.Body {
	case "json":
		m := make(map[string]string, len(r.Fields))
		for _, name := range sortedKeys(r.Fields) {
			s, err := value(r.Fields[name])
			if err != nil {
				return nil, nil, err
			}
			m[name] = s
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, nil, token.Permanent("malformed inputFields: cannot encode the request")
		}
		body, contentType = b, "application/json"
	case "form":
		form := url.Values{}
		for _, name := range sortedKeys(r.Fields) {
			s, err := value(r.Fields[name])
			if err != nil {
				return nil, nil, err
			}
			form.Set(name, s)
		}
		body, contentType = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	var rd *bytes.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, r.Method, u.String(), rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, r.Method, u.String(), nil)
	}
	if err != nil {
		// The error would quote the URL, credentials included.
		return nil, nil, token.Permanent("%s: cannot build the request", p.cfg.Name)
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req, secrets, nil
}

func (p *Provider) read(resp *provider.Response, obtainedAt time.Time, secrets []string) *answer {
	a := &answer{p: p}
	a.Answer = provider.Read(resp, &a.json)
	if !a.parsed() {
		return a
	}
	s := &p.cfg.Spec.Response
	a.success = s.Success == nil
	if s.Success != nil {
		v, ok := lookup(a.json, s.Success.Path)
		a.success = ok && equal(s.Success.Equals, v)
	}
	for _, group := range []struct {
		into  *string
		key   string
		rules []Rule
	}{{&a.server, "server_failure", s.ServerFailure}, {&a.rejected, "rejected", s.Rejected}} {
		for i, rule := range group.rules {
			if d, ok := a.match(rule, secrets); ok {
				*group.into = fmt.Sprintf("response.%s[%d]: %s", group.key, i, d)
				break
			}
		}
	}
	a.access = firstString(a.json, s.AccessToken)
	a.refresh = firstString(a.json, s.RefreshToken)
	a.lifetime, a.bad = p.lifetime(a.json, obtainedAt)
	return a
}

// match reports whether rule holds for a, and describes it without quoting
// anything the marketplace wrote but a status code.
func (a *answer) match(rule Rule, secrets []string) (string, bool) {
	var parts []string
	if len(rule.HTTPStatus) > 0 {
		if !inClasses(a.Status, rule.HTTPStatus) {
			return "", false
		}
	}
	if rule.Success != nil {
		s := a.p.cfg.Spec.Response.Success
		v, present := lookup(a.json, s.Path)
		// A flag of another type (the string "true" where success is a
		// boolean) says neither success nor failure: unusable.
		failure := present && sameType(s.Equals, v) && !a.success
		if *rule.Success && !a.success || !*rule.Success && !failure {
			return "", false
		}
		parts = append(parts, fmt.Sprintf("%s %s", s.Path, map[bool]string{true: "says success", false: "says failure"}[a.success]))
	}
	if rule.Path != "" {
		v, ok := lookup(a.json, rule.Path)
		switch {
		case rule.Absent:
			if ok && v != nil {
				return "", false
			}
			parts = append(parts, "no "+rule.Path)
		case len(rule.Codes) > 0:
			n, isCode := code(v)
			if !ok || !isCode || !inClasses(n, rule.Codes) {
				return "", false
			}
			parts = append(parts, fmt.Sprintf("%s %d", rule.Path, n))
		default:
			hit := -1
			for i, e := range rule.Equals {
				if ok && equal(e, v) {
					hit = i
					break
				}
			}
			if hit < 0 {
				return "", false
			}
			// The configured value, not the marketplace's: the entry is
			// no secret, the answer may echo one.
			shown := fmt.Sprint(rule.Equals[hit])
			if provider.SafeWord(shown, secrets) == "" {
				shown = "a listed value"
			}
			parts = append(parts, fmt.Sprintf("%s %s", rule.Path, shown))
		}
	}
	return strings.Join(parts, ", "), true
}

// lifetime reads the expiry rule. It returns why the answer is unusable
// when it is ("" when it is not).
func (p *Provider) lifetime(doc map[string]any, obtainedAt time.Time) (time.Duration, string) {
	e := p.cfg.Spec.Response.Expiry
	switch {
	case e.TokenTTL:
		return p.cfg.TokenTTL, ""
	case e.ExpiresIn != "":
		v, _ := lookup(doc, e.ExpiresIn)
		secs, ok := number(v)
		if v != nil && (!ok || secs < 0) {
			return 0, fmt.Sprintf("an unusable %s (negative or not a number)", e.ExpiresIn)
		}
		if secs < 1 {
			if p.cfg.TokenTTL > 0 {
				return p.cfg.TokenTTL, ""
			}
			return 0, fmt.Sprintf("a token without %s, and the provider sets no token_ttl to assume", e.ExpiresIn)
		}
		if secs >= MaxLifetime.Seconds() {
			return MaxLifetime, ""
		}
		return time.Duration(secs) * time.Second, ""
	}
	v, ok := lookup(doc, e.ExpiresAt)
	if !ok || v == nil {
		return 0, fmt.Sprintf("a token without %s", e.ExpiresAt)
	}
	at, ok := parseTime(v, e.Layout)
	if !ok {
		return 0, fmt.Sprintf("a %s that is not a time in layout %s", e.ExpiresAt, e.Layout)
	}
	// Truncated, so the stored expiry is never later than the real one.
	d := at.Truncate(time.Second).Sub(obtainedAt)
	if d < time.Second {
		return 0, fmt.Sprintf("a %s that is already past", e.ExpiresAt)
	}
	return min(d, MaxLifetime), ""
}

func parseTime(v any, layout string) (time.Time, bool) {
	switch layout {
	case "unix", "unix_ms":
		n, ok := number(v)
		if !ok || n <= 0 {
			return time.Time{}, false
		}
		if layout == "unix_ms" {
			return time.UnixMilli(int64(n)), true
		}
		return time.Unix(int64(n), 0), true
	}
	s, ok := v.(string)
	if !ok {
		return time.Time{}, false
	}
	if l, named := Layouts[layout]; named {
		layout = l
	}
	t, err := time.Parse(layout, strings.TrimSpace(s))
	return t, err == nil
}

// lookup follows a dotted path through objects (and arrays, by index).
func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, seg := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func firstString(doc map[string]any, paths Paths) string {
	for _, p := range paths {
		if v, ok := lookup(doc, p); ok {
			if s, ok := v.(string); ok && strings.TrimSpace(s) != "" {
				return strings.TrimSpace(s)
			}
		}
	}
	return ""
}

// equal compares a configured value e with an answer's v: same JSON type;
// strings without case and surrounding blanks.
func equal(e, v any) bool {
	switch e := e.(type) {
	case bool:
		b, ok := v.(bool)
		return ok && b == e
	case string:
		s, ok := v.(string)
		return ok && strings.EqualFold(strings.TrimSpace(s), strings.TrimSpace(e))
	case int:
		f, ok := v.(float64)
		return ok && f == float64(e)
	case int64:
		f, ok := v.(float64)
		return ok && f == float64(e)
	case uint64:
		f, ok := v.(float64)
		return ok && f == float64(e)
	case float64:
		f, ok := v.(float64)
		return ok && f == e
	}
	return false
}

// sameType reports whether the answer's v has the JSON type of the
// configured e.
func sameType(e, v any) bool {
	switch e.(type) {
	case bool:
		_, ok := v.(bool)
		return ok
	case string:
		_, ok := v.(string)
		return ok
	case int, int64, uint64, float64:
		_, ok := v.(float64)
		return ok
	}
	return false
}

// number reads a JSON number or a numeric string.
func number(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// code reads a status code: an integer (number or numeric string) in
// [0, 1000).
func code(v any) (int, bool) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) || f < 0 || f >= 1000 {
		return 0, false
	}
	return int(f), true
}

// inClasses reports whether n is one of the codes or classes ("4xx").
func inClasses(n int, classes []string) bool {
	s := strconv.Itoa(n)
	for _, c := range classes {
		if c == s || strings.HasSuffix(c, "xx") && len(s) == 3 && s[0] == c[0] {
			return true
		}
	}
	return false
}
