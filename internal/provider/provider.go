// Package provider holds what every marketplace client shares: one bounded,
// deadline-bound HTTP call, and the verdict tables' machinery (Read, Row,
// Decide) that turns an answer into a stored token or a token.Failure
// (permanent, transient or unusable) with a reason that never quotes a
// credential, a token, a query string or a response body. The clients of the
// token flows live in its sub-packages, each exporting its providers-file
// kind whole as one Kind value (keys, defaults, checks, constructor), which
// the registry lists.
package provider

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/token"
)

// MaxBody caps what is read of a marketplace answer; a token response is a
// few hundred bytes, so anything near the cap is not one.
const MaxBody = 1 << 20

// NewHTTPClient returns the client the providers share. Its transport keeps
// enough idle connections per marketplace for the refresher's concurrency, so
// a busy worker pool does not open a connection per call. There is no client
// timeout: each call carries its own context deadline.
func NewHTTPClient(maxConnsPerHost int) *http.Client {
	if maxConnsPerHost < 2 {
		maxConnsPerHost = 2
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 4 * maxConnsPerHost
	t.MaxIdleConnsPerHost = maxConnsPerHost
	t.ResponseHeaderTimeout = 0
	return &http.Client{
		Transport: t,
		// A token endpoint that redirects is misconfigured; following it
		// would resend credentials to another place.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Response is a marketplace answer, read in full (up to MaxBody).
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Redact returns the URL without query, fragment or user info: the form that
// may appear in logs and errors.
func Redact(u *url.URL) string {
	if u == nil {
		return ""
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// Do sends req with the given client and deadline and reads the answer. Every
// error it returns is a *token.Failure whose reason names the endpoint
// without its query string: net/http's own errors quote the full URL, and
// Unicommerce puts the password in it.
func Do(ctx context.Context, client *http.Client, req *http.Request, timeout time.Duration) (*Response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	target := Redact(req.URL)
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return nil, transportFailure(ctx, target, timeout, err, req.URL)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, transportFailure(ctx, target, timeout, err, req.URL)
	}
	if len(body) > MaxBody {
		// Drain a little more so the connection can be reused when the
		// excess is small; give up on it otherwise.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
		f := token.Transient("%s answered HTTP %d with a body over %d bytes; not a token response", target, resp.StatusCode, MaxBody)
		f.Status = resp.StatusCode
		return nil, f
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func transportFailure(ctx context.Context, target string, timeout time.Duration, err error, u *url.URL) *token.Failure {
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return token.Transient("%s did not answer within %s", target, timeout)
	}
	if errors.Is(err, context.Canceled) {
		return token.Transient("call to %s was cancelled", target)
	}
	// Strip *url.Error, whose text holds the whole URL, keeping the cause.
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return token.Transient("%s did not answer in time", target)
	}
	return token.Transient("call to %s failed: %s", target, scrub(err.Error(), u))
}

// scrub removes the request's query values and user info from an error
// text. Unwrapping *url.Error is not enough: net/http quotes a redirect's
// unparsable Location header verbatim, and a server may echo the request's
// query (the Unicommerce password) into it.
func scrub(msg string, u *url.URL) string {
	if u == nil {
		return msg
	}
	var secrets []string
	for _, vs := range u.Query() {
		secrets = append(secrets, vs...)
	}
	if p, ok := u.User.Password(); ok {
		secrets = append(secrets, p)
	}
	if u.RawQuery != "" {
		secrets = append(secrets, u.RawQuery)
	}
	for _, s := range secrets {
		if len(s) < 3 {
			// Too short to hide anything by replacing it, and replacing
			// it would mangle the rest of the message.
			continue
		}
		for _, form := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			msg = strings.ReplaceAll(msg, form, "[redacted]")
		}
	}
	if strings.Contains(msg, "Location header") {
		return "the answer redirects to an unparsable Location"
	}
	return msg
}

func looksLikeHTML(b []byte) bool {
	head := strings.ToLower(strings.TrimSpace(string(b[:min(len(b), 64)])))
	return strings.HasPrefix(head, "<!doctype html") || strings.HasPrefix(head, "<html")
}

// RetryAfter parses a Retry-After header (delay-seconds or an HTTP date).
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

// ObtainedAt truncates t to the second: the DATETIME column stores seconds,
// and a stored expiry must never be later than the real one.
func ObtainedAt(t time.Time) time.Time { return t.Truncate(time.Second) }
