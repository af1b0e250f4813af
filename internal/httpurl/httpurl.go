// Package httpurl is the one check of an outbound address the settings, the
// providers file, the marketplace clients, the webhooks and tokenctl accept:
// an absolute http or https URL with a host (RFC 3986 §4.3), and (Secure)
// http:// only to a loopback host unless a setting allows more. It is a
// leaf (the standard library only), so every layer can use it without an
// import cycle.
//
// Its errors never repeat the URL, which may carry a password or a token in
// its query: callers name the setting or field instead.
package httpurl

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

var (
	// ErrNotAbsolute: the text is not a URL, its scheme is not http or
	// https, or it has no host.
	ErrNotAbsolute = errors.New("is not an absolute http(s) URL")
	// ErrSecretParts: the URL carries user:password or a query, which would
	// be logged and shown wherever the address is (Plain refuses them).
	ErrSecretParts = errors.New("must not carry credentials or a query")
	// ErrInsecureHTTP: the URL is http:// to a host that is not loopback,
	// so a seller's password, a client secret or a token would cross the
	// network in clear. Callers add the setting that allows it.
	ErrInsecureHTTP = errors.New("is http:// to a host that is not loopback (127.0.0.0/8, ::1, localhost), " +
		"which would send credentials and tokens in clear; use https://")
)

// Absolute parses raw as an absolute http or https URL with a host. It
// returns ErrNotAbsolute otherwise.
func Absolute(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, ErrNotAbsolute
	}
	return u, nil
}

// Plain is Absolute for an address that is shown and logged (a
// marketplace's base or token URL): it also returns ErrSecretParts when raw
// carries user:password or a query.
func Plain(raw string) (*url.URL, error) {
	u, err := Absolute(raw)
	if err != nil {
		return nil, err
	}
	if u.User != nil || u.RawQuery != "" {
		return nil, ErrSecretParts
	}
	return u, nil
}

// Secure returns ErrInsecureHTTP when u is http:// to a host that is not
// loopback, unless allowHTTP (an explicit setting) says otherwise. https://
// and loopback hosts (127.0.0.0/8, ::1, localhost and its subdomains, which
// resolve to loopback by RFC 6761) always pass: tests and the sandbox use
// them.
func Secure(u *url.URL, allowHTTP bool) error {
	if u.Scheme != "http" || allowHTTP || Loopback(u.Hostname()) {
		return nil
	}
	return ErrInsecureHTTP
}

// Loopback says whether host (a URL's Hostname: no port, no brackets) is a
// loopback address or name.
func Loopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
