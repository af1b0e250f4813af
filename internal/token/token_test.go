package token

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	zero := time.Time{}
	for name, tt := range map[string]struct {
		exp  *time.Time
		want bool
	}{
		"never generated":    {nil, true},
		"zero date":          {&zero, true},
		"expired":            {at(-time.Minute), true},
		"inside the window":  {at(9 * time.Minute), true},
		"at the window edge": {at(10 * time.Minute), false},
		"outside the window": {at(11 * time.Minute), false},
		"far in the future":  {at(24 * time.Hour), false},
	} {
		if got := Due(tt.exp, now, 10*time.Minute); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", name, got, tt.want)
		}
	}
}

func TestParseFieldsNeverQuotesInput(t *testing.T) {
	const secret = "Zx9-secret"
	for name, raw := range map[string]string{
		"syntax":       `{"password":"` + secret + `"`,
		"bad char":     `{"password":` + secret + `}`,
		"array":        `["` + secret + `"]`,
		"string":       `"` + secret + `"`,
		"number field": `{"password":12345}`,
		"object field": `{"password":{"x":"` + secret + `"}}`,
	} {
		f, err := ParseFields([]byte(raw))
		if err == nil {
			_, err = f.Required("password")
		}
		if err == nil {
			t.Errorf("%s: want an error", name)
			continue
		}
		if !IsPermanent(err) {
			t.Errorf("%s: malformed inputFields must be permanent: %v", name, err)
		}
		for _, s := range []string{secret, "12345", "Zx9"} {
			if contains(err.Error(), s) {
				t.Errorf("%s: error %q quotes the input", name, err)
			}
		}
	}
}

func TestFingerprint(t *testing.T) {
	a := Fingerprint([]byte(`{"username":"u","password":"p1"}`), "")
	b := Fingerprint([]byte(` {"username":"u","password":"p1"} `), "")
	c := Fingerprint([]byte(`{"username":"u","password":"p2"}`), "")
	if Fingerprint([]byte(`{}`), "rt-1") == Fingerprint([]byte(`{}`), "rt-2") {
		t.Error("a new refresh token must change the fingerprint")
	}
	if Fingerprint([]byte(`{"a":1}`), "") == Fingerprint([]byte(`{"a":`), "1}") {
		t.Error("the two parts must not run into each other")
	}
	if a != b {
		t.Error("surrounding space must not change the fingerprint")
	}
	if a == c {
		t.Error("a changed password must change the fingerprint")
	}
	if len(a) != 32 {
		t.Errorf("fingerprint %q: want 32 hex characters", a)
	}
}

func TestFailureClassification(t *testing.T) {
	p := Permanent("rejected")
	tr := Transient("down")
	tr.RetryAfter = 3 * time.Second
	wrapped := fmt.Errorf("attempt: %w", tr)
	if !IsPermanent(fmt.Errorf("x: %w", p)) || IsPermanent(wrapped) {
		t.Error("IsPermanent must see through wrapping")
	}
	if d, ok := RetryAfter(wrapped); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if p.Error() != "permanent: rejected" || tr.Error() != "transient: down" {
		t.Errorf("texts: %q %q", p, tr)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
