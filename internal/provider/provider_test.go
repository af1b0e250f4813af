package provider

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	u, _ := url.Parse("https://user:pw@mp.example.com/authToken?username=a&password=secret#x")
	if got := Redact(u); got != "https://mp.example.com/authToken" {
		t.Errorf("Redact = %q", got)
	}
}

func TestRead(t *testing.T) {
	type body struct {
		A string `json:"a"`
		N int    `json:"n"`
	}
	for _, tc := range []struct {
		name, ct, body string
		want           Body
		wantA          string
	}{
		{"JSON", "application/json", `{"a":"x","n":1}`, JSON, "x"},
		{"JSON labelled text/plain", "text/plain; charset=utf-8", `{"a":"x"}`, JSON, "x"},
		{"JSON untyped", "", ` {"a":"x"} `, JSON, "x"},
		{"form", "application/x-www-form-urlencoded", `a=x&n=1`, Form, ""},
		{"form labelled text/plain (x/oauth2 reads it as a form)", "text/plain", `access_token=x&expires_in=60`, Form, ""},
		{"empty", "application/json", "  \n", Empty, ""},
		{"HTML", "text/html", "<p>hi</p>", HTML, ""},
		{"HTML labelled JSON", "application/json", "<!DOCTYPE html><html></html>", HTML, ""},
		{"truncated", "application/json", `{"a":"x","n":`, Truncated, ""},
		{"garbage", "application/json", "{\"a\":x\x00", Garbage, ""},
		{"JSON of another shape leaves nothing behind", "application/json", `{"a":"x","n":"one"}`, Garbage, ""},
		{"an array", "application/json", `["a"]`, Garbage, ""},
		{"trailing data", "application/json", `{"a":"x"} {"a":"y"}`, Garbage, ""},
		{"plain text", "text/plain", `service unavailable`, Garbage, ""},
	} {
		var b body
		a := Read(&Response{Status: 200, Header: http.Header{"Content-Type": {tc.ct}}, Body: []byte(tc.body)}, &b)
		if a.Body != tc.want || b.A != tc.wantA {
			t.Errorf("%s: body %s (a=%q), want %s (a=%q)", tc.name, a.Body, b.A, tc.want, tc.wantA)
		}
	}
}

func TestDescribeNeverQuotesTheBody(t *testing.T) {
	r := &Response{Status: 502, Header: http.Header{"Content-Type": {"text/html; charset=utf-8"}},
		Body: []byte("<!DOCTYPE html><html>password=hunter2</html>")}
	a := Read(r, &struct{}{})
	got := StatusReason("mp", &a)
	want := "mp answered HTTP 502 with a 44-byte text/html body (HTML)"
	if got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestSafeWord(t *testing.T) {
	for word, want := range map[string]string{
		"account_locked": "account_locked", "PENDING": "PENDING", "": "",
		"has space": "", "rt-old-0123456789": "", "old-0123": "", strings.Repeat("a", 41): "",
	} {
		if got := SafeWord(word, []string{"rt-old-0123456789"}); got != want {
			t.Errorf("SafeWord(%q) = %q, want %q", word, got, want)
		}
	}
}
