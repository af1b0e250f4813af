package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/token"
)

// Verdict is what a marketplace answer comes to: a token, stored, or a
// failure of a class (token.Class). A failing verdict is its class, plus
// one (Fails, Verdict.Class): the class a table decides is the one the
// handler, the archive, the API, the webhooks and the metrics see. The
// zero Verdict is Stored.
type Verdict uint8

// The four verdicts. Every row of a kind's table names one.
const (
	// Stored: the answer is a token; it is written to the connection.
	Stored Verdict = 0
	// Permanent: an explicit refusal (rejected credentials, a refused
	// grant, a refused request). Archived with its reason; tried again
	// after FAILURE_COOLDOWN, when the credentials change, or by an
	// operator. Never a retry loop.
	Permanent = Verdict(token.ClassPermanent) + 1
	// Transient: the marketplace's or the network's trouble. Retried with
	// capped exponential backoff, honouring Retry-After.
	Transient = Verdict(token.ClassTransient) + 1
	// Unusable: an answer the product cannot place (a 2xx of an unknown
	// shape). Retried like a transient failure, but with a backoff that
	// grows to hours (refresh.RetryDelay), and counted apart
	// (outcome "unusable"), so an operator sees it and it never loops.
	Unusable = Verdict(token.ClassUnusable) + 1
)

// Fails is the verdict of a failure of class c.
func Fails(c token.Class) Verdict { return Verdict(c) + 1 }

// Class is the class of the failure v stands for; ok is false for Stored.
func (v Verdict) Class() (c token.Class, ok bool) {
	if v == Stored {
		return 0, false
	}
	return token.Class(v - 1), true
}

// String is "stored" or the failure's class (token.Class.String).
func (v Verdict) String() string {
	if c, ok := v.Class(); ok {
		return c.String()
	}
	return "stored"
}

// Body is the kind of body an answer has, as far as a verdict needs it.
type Body string

// The bodies Read tells apart.
const (
	Empty     Body = "empty"
	JSON      Body = "JSON"      // a JSON object, decoded into the kind's struct
	Form      Body = "form"      // application/x-www-form-urlencoded (or form-shaped text/plain)
	HTML      Body = "HTML"      // an HTML page: a proxy's or a login page
	Truncated Body = "truncated" // the start of a JSON object, cut short
	Garbage   Body = "garbage"   // anything else, JSON of another shape included
)

// Answer is a marketplace answer as a verdict table sees it. Each kind
// embeds it in its own answer type, beside the fields it decoded.
type Answer struct {
	Status int
	Header http.Header
	Body   Body
	// Form holds the parameters of a Form body.
	Form url.Values
	size int
	ct   string
}

// Read classifies resp's body and, when it is a JSON object, decodes it
// into v (a pointer to a struct). A JSON body that does not fit v (a string
// where v has a number) is Garbage and leaves v zero: only a fully parsed
// answer is trusted. Form bodies are read as golang.org/x/oauth2 reads them
// (application/x-www-form-urlencoded, and text/plain that is not JSON);
// JSON labelled text/plain is JSON.
func Read(resp *Response, v any) Answer {
	a := Answer{Status: resp.Status, Header: resp.Header, size: len(resp.Body)}
	ct := resp.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err == nil {
		ct = mt
	}
	a.ct = ct
	b := bytes.TrimSpace(resp.Body)
	switch {
	case len(b) == 0:
		a.Body = Empty
	case ct == "application/x-www-form-urlencoded" || ct == "text/plain" && b[0] != '{' && bytes.IndexByte(b, '=') > 0:
		form, err := url.ParseQuery(string(b))
		if err != nil {
			a.Body = Garbage
			break
		}
		a.Body, a.Form = Form, form
	case ct == "text/html" || looksLikeHTML(b):
		a.Body = HTML
	case b[0] == '{':
		a.Body = decodeJSON(b, v)
	default:
		a.Body = Garbage
	}
	return a
}

func decodeJSON(b []byte, v any) Body {
	dec := json.NewDecoder(bytes.NewReader(b))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil {
		return JSON
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv.Elem().SetZero()
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return Truncated
	}
	return Garbage
}

// OK is a 2xx answer.
func (a *Answer) OK() bool { return a.Status >= 200 && a.Status < 300 }

// Redirect is a 3xx answer: never followed, since following it would resend
// the credentials elsewhere.
func (a *Answer) Redirect() bool { return a.Status >= 300 && a.Status < 400 }

// ServerTrouble is an answer whose status says the marketplace is in
// trouble and may heal: 408, 429 or 5xx.
func (a *Answer) ServerTrouble() bool { return ServerTroubleCode(a.Status) }

// ServerTroubleCode reports whether an HTTP status code (or a body's
// statusCode) is 408, 429 or 5xx.
func ServerTroubleCode(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500 && code < 600
}

// CredentialsRejected is a 401 or 403.
func (a *Answer) CredentialsRejected() bool {
	return a.Status == http.StatusUnauthorized || a.Status == http.StatusForbidden
}

// ClientError is any other 4xx.
func (a *Answer) ClientError() bool { return a.Status >= 400 && a.Status < 500 && !a.ServerTrouble() }

// Healing is a 2xx body that a proxy or an interrupted transfer makes and
// that heals on its own: an HTML page, an empty body, cut-short JSON.
func (a *Answer) Healing() bool {
	return a.OK() && (a.Body == HTML || a.Body == Empty || a.Body == Truncated)
}

// Describe names the status and the body's type and size, never its
// content: an error page may echo the request, credentials included.
func (a *Answer) Describe() string {
	if a.Body == Empty {
		return fmt.Sprintf("HTTP %d with an empty body", a.Status)
	}
	ct := a.ct
	if ct == "" {
		ct = "untyped"
	}
	return fmt.Sprintf("HTTP %d with a %d-byte %s body (%s)", a.Status, a.size, ct, a.Body)
}

// Row is one line of a kind's verdict table: the first row whose When
// matches an answer decides it. Shape is the answer as docs/token-flows.md
// shows it.
type Row[A any] struct {
	Shape   string
	Verdict Verdict
	When    func(a *A) bool
	// Reason is the failure's reason (nil for Stored). It never quotes a
	// body, a credential or a token.
	Reason func(a *A) string
}

// Decide returns the first row of table that matches a. A table ends with a
// row that matches everything, so Decide always finds one; it panics if a
// table does not.
func Decide[A any](table []Row[A], a *A) Row[A] {
	for _, r := range table {
		if r.When(a) {
			return r
		}
	}
	panic("provider: verdict table without a catch-all row")
}

// Fail returns the *token.Failure of a row that is not Stored: its
// verdict's class, reason, the answer's status, and its Retry-After
// (honoured for transient and unusable verdicts). Stored has no class: a
// row that fails with it fails transient.
func (a *Answer) Fail(v Verdict, reason string) *token.Failure {
	c, _ := v.Class()
	f := token.Fail(c, "%s", reason)
	f.Status = a.Status
	if c != token.ClassPermanent {
		f.RetryAfter = RetryAfter(a.Header, time.Now())
	}
	return f
}

// Always matches every answer: the catch-all last row.
func Always[A any](*A) bool { return true }

// Common reasons, shared by the kinds' tables.

// RedirectReason is the reason of a 3xx.
func RedirectReason(name string, a *Answer) string {
	return fmt.Sprintf("%s refused the request (HTTP %d, a redirect, not followed)", name, a.Status)
}

// StatusReason is the reason of an answer decided by its status alone.
func StatusReason(name string, a *Answer) string {
	switch {
	case a.CredentialsRejected():
		return fmt.Sprintf("%s rejected the credentials (HTTP %d)", name, a.Status)
	case a.Status == http.StatusTooManyRequests:
		return fmt.Sprintf("%s is rate limiting (HTTP 429)", name)
	case a.ServerTrouble():
		return fmt.Sprintf("%s answered %s", name, a.Describe())
	case a.OK():
		return fmt.Sprintf("%s answered %s that is not a token response", name, a.Describe())
	}
	return fmt.Sprintf("%s refused the request (%s)", name, a.Describe())
}

// SafeWord returns a marketplace's word (an error code, a status) fit for a
// reason, or "" when it is not: only a short word of letters, digits and
// _.- is shown, and never one that holds or is held in a secret, since a
// server may echo its input into any field.
func SafeWord(word string, secrets []string) string {
	if word == "" || len(word) > 40 {
		return ""
	}
	for _, r := range word {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '_' && r != '.' && r != '-' {
			return ""
		}
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(strings.ToLower(word), strings.ToLower(s)) || strings.Contains(strings.ToLower(s), strings.ToLower(word))) {
			return ""
		}
	}
	return word
}

// Rule returns a row of a verdict table (a function, so a table of another
// package reads as a list of rules without naming each field).
func Rule[A any](shape string, v Verdict, when func(a *A) bool, reason func(a *A) string) Row[A] {
	return Row[A]{Shape: shape, Verdict: v, When: when, Reason: reason}
}

// MaxLifetime is the longest token lifetime believed (ten years): a longer
// one is clamped to it, as golang.org/x/oauth2 clamps expires_in (there at
// 2³¹−1 seconds) rather than refusing the token. Ten years keeps the stored
// DATETIME and every duration derived from it far from overflow. Every kind
// that reads a lifetime from the answer clamps with it.
const MaxLifetime = 10 * 365 * 24 * time.Hour
