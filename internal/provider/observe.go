package provider

import (
	"net/http"
)

// StatusObserver is told how each marketplace call ended (metrics). status
// is the HTTP status code, 0 when no answer came (network error, timeout).
type StatusObserver interface {
	Answered(kind string, status int)
}

// Observed returns a client that shares client's transport (and so its pool
// of connections) and tells obs the outcome of every call made for the given
// provider kind. Each provider gets its own Observed client, so the kind is
// known without looking into requests; nothing of the request (URL, query,
// body) reaches obs.
func Observed(client *http.Client, kind string, obs StatusObserver) *http.Client {
	if obs == nil {
		return client
	}
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c := *client
	c.Transport = &observedTransport{base: base, kind: kind, obs: obs}
	return &c
}

type observedTransport struct {
	base http.RoundTripper
	kind string
	obs  StatusObserver
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.obs.Answered(t.kind, 0)
		return resp, err
	}
	t.obs.Answered(t.kind, resp.StatusCode)
	return resp, nil
}
