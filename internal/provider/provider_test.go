package provider

import (
	"net/http"
	"net/url"
	"testing"
)

func TestRedact(t *testing.T) {
	u, _ := url.Parse("https://user:pw@mp.example.com/authToken?username=a&password=secret#x")
	if got := Redact(u); got != "https://mp.example.com/authToken" {
		t.Errorf("Redact = %q", got)
	}
}

func TestStatusFailure(t *testing.T) {
	for status, permanent := range map[int]bool{
		400: true, 401: true, 403: true, 404: true, 422: true,
		408: false, 429: false, 500: false, 502: false, 503: false, 504: false,
	} {
		f := StatusFailure("mp", &Response{Status: status, Header: http.Header{}})
		if f.Permanent != permanent {
			t.Errorf("HTTP %d: permanent = %v, want %v", status, f.Permanent, permanent)
		}
		if f.Status != status {
			t.Errorf("HTTP %d: status %d", status, f.Status)
		}
	}
}

func TestDescribeBodyNeverQuotesIt(t *testing.T) {
	r := &Response{Status: 502, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body: []byte("<!DOCTYPE html><html>password=hunter2</html>")}
	got := NotJSON("mp", r).Error()
	want := "transient: mp answered HTTP 502 with a 44-byte text/html, HTML body that is not a valid token response"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
