// Package httpurl is the one check of an outbound address the settings, the
// providers file, the marketplace clients, the webhooks and tokenctl accept:
// an absolute http or https URL with a host (RFC 3986 §4.3). It is a leaf
// (net/url only), so every layer can use it without an import cycle.
//
// Its errors never repeat the URL, which may carry a password or a token in
// its query: callers name the setting or field instead.
package httpurl

import (
	"errors"
	"net/url"
)

var (
	// ErrNotAbsolute: the text is not a URL, its scheme is not http or
	// https, or it has no host.
	ErrNotAbsolute = errors.New("is not an absolute http(s) URL")
	// ErrSecretParts: the URL carries user:password or a query, which would
	// be logged and shown wherever the address is (Plain refuses them).
	ErrSecretParts = errors.New("must not carry credentials or a query")
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
