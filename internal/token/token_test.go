package token

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	zero := time.Time{}
	const window = 10 * time.Minute
	for name, tt := range map[string]struct {
		exp      *time.Time
		lifetime time.Duration
		want     bool
	}{
		"never generated":    {nil, 0, true},
		"zero date":          {&zero, 0, true},
		"expired":            {at(-time.Minute), 0, true},
		"inside the window":  {at(9 * time.Minute), 0, true},
		"at the window edge": {at(10 * time.Minute), 0, false},
		"outside the window": {at(11 * time.Minute), 0, false},
		"far in the future":  {at(24 * time.Hour), 0, false},
		// A 4-minute token under a 10-minute window: due a third of its
		// lifetime (80 s) before expiry, not the moment it is stored.
		"4m token just stored":           {at(4 * time.Minute), 4 * time.Minute, false},
		"4m token, 81 s left":            {at(81 * time.Second), 4 * time.Minute, false},
		"4m token, 80 s left (the edge)": {at(80 * time.Second), 4 * time.Minute, false},
		"4m token, 79 s left":            {at(79 * time.Second), 4 * time.Minute, true},
		"4m token, expired":              {at(-time.Second), 4 * time.Minute, true},
		"4m token never generated":       {nil, 4 * time.Minute, true},
		// A long lifetime leaves refresh_before in charge.
		"24h token, 9m left":  {at(9 * time.Minute), 24 * time.Hour, true},
		"24h token, 11m left": {at(11 * time.Minute), 24 * time.Hour, false},
		// Exactly three windows: the cap and the window agree.
		"30m token, 10m left":   {at(10 * time.Minute), 30 * time.Minute, false},
		"30m token, 9m59s left": {at(10*time.Minute - time.Second), 30 * time.Minute, true},
	} {
		if got := Due(tt.exp, now, window, tt.lifetime); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", name, got, tt.want)
		}
		if tt.lifetime > 0 && tt.want && !Due(tt.exp, now, window, 0) {
			t.Errorf("%s: due with its lifetime but not without: the SQL superset would miss it", name)
		}
	}
}

func TestLead(t *testing.T) {
	for _, tc := range []struct{ before, lifetime, want time.Duration }{
		{10 * time.Minute, 0, 10 * time.Minute},
		{10 * time.Minute, 4 * time.Minute, 80 * time.Second},
		{10 * time.Minute, time.Hour, 10 * time.Minute},
		{2 * time.Hour, 24 * time.Hour, 2 * time.Hour},
		{2 * time.Hour, 3 * time.Hour, time.Hour},
		{10 * time.Minute, 3 * time.Second, time.Second},
	} {
		if got := Lead(tc.before, tc.lifetime); got != tc.want {
			t.Errorf("Lead(%s, %s) = %s, want %s", tc.before, tc.lifetime, got, tc.want)
		}
	}
}

func TestTargetOwnClock(t *testing.T) {
	for _, tc := range []struct {
		name             string
		before, lifetime time.Duration
		want             bool
	}{
		{"lifetime said by each answer", 10 * time.Minute, 0, true},
		{"ajio: 30m under 10m, the lead is refresh_before", 10 * time.Minute, 30 * time.Minute, false},
		{"unicommerce: 24h under 2h", 2 * time.Hour, 24 * time.Hour, false},
		{"a second short of three times", 10 * time.Minute, 30*time.Minute - time.Second, true},
		{"shorter than refresh_before", 10 * time.Minute, 4 * time.Minute, true},
	} {
		if got := (Target{RefreshBefore: tc.before, Lifetime: tc.lifetime}).OwnClock(); got != tc.want {
			t.Errorf("%s: OwnClock() = %v, want %v", tc.name, got, tc.want)
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

// TestClassReadsBack: every class's word reads back as the class, through
// ParseClass, its text form and ParseFailure of a failure's text, the form
// asynq keeps and older archives hold ("permanent: <reason>").
func TestClassReadsBack(t *testing.T) {
	for _, c := range Classes {
		got, ok := ParseClass(c.String())
		if !ok || got != c {
			t.Errorf("ParseClass(%q) = %v, %v", c, got, ok)
		}
		b, err := c.MarshalText()
		var back Class
		if err != nil || back.UnmarshalText(b) != nil || back != c {
			t.Errorf("text of %v: %q, %v, read back %v", c, b, err, back)
		}
		f := Fail(c, "marketplace: answered HTTP %d", 503)
		if got, reason, ok := ParseFailure(f.Error()); !ok || got != c || reason != f.Reason {
			t.Errorf("ParseFailure(%q) = %v, %q, %v", f.Error(), got, reason, ok)
		}
		if ClassOf(fmt.Errorf("wrapped: %w", f)) != c {
			t.Errorf("ClassOf must see through wrapping (%v)", c)
		}
	}
	if got := []string{ClassTransient.String(), ClassPermanent.String(), ClassUnusable.String()}; strings.Join(got, " ") != "transient permanent unusable" {
		t.Errorf("words: %q", got)
	}
	if c, reason, ok := ParseFailure("permanent: credentials rejected (401)"); !ok || c != ClassPermanent || reason != "credentials rejected (401)" {
		t.Errorf("an archived failure's text: %v, %q, %v", c, reason, ok)
	}
	for _, s := range []string{"", "deferred: breaker open", "no provider is configured", "Permanent: x", "permanent:x"} {
		if _, _, ok := ParseFailure(s); ok {
			t.Errorf("ParseFailure(%q) read a class", s)
		}
	}
	if ClassOf(errors.New("unclassified")) != ClassTransient || (&Failure{}).Class != ClassTransient {
		t.Error("an unclassified error is transient")
	}
	if IsUnusable(Permanent("x")) || !IsUnusable(Unusable("x")) || IsPermanent(Unusable("x")) {
		t.Error("IsUnusable/IsPermanent")
	}
	var bad Class
	if _, err := Class(9).MarshalText(); err == nil || bad.UnmarshalText([]byte("fatal")) == nil {
		t.Error("an unknown class must not be written or read")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestSpread(t *testing.T) {
	for lead, want := range map[time.Duration]time.Duration{
		0: 0, 2 * time.Second: 200 * time.Millisecond, 80 * time.Second: 8 * time.Second,
		10 * time.Minute: MaxSpread, 2 * time.Hour: MaxSpread,
	} {
		if got := Spread(lead); got != want {
			t.Errorf("Spread(%s) = %s, want %s", lead, got, want)
		}
	}
}

// TestKeyedFingerprint: with a key the fingerprint is an HMAC, different
// under another key and from the legacy digest; a legacy fingerprint
// recorded before the key still compares, and so does a keyed one.
func TestKeyedFingerprint(t *testing.T) {
	fields, rt := []byte(`{"username":"u","password":"p1"}`), "rt-1"
	k1 := NewFingerprinter([]byte("key-one-0123456789abcdef0123456789"))
	k2 := NewFingerprinter([]byte("key-two-0123456789abcdef0123456789"))
	none := NewFingerprinter(nil)
	a, b := k1.Of(fields, rt), k2.Of(fields, rt)
	if !strings.HasPrefix(a, KeyedPrefix) || !strings.HasPrefix(b, KeyedPrefix) {
		t.Fatalf("keyed fingerprints carry %s: %q %q", KeyedPrefix, a, b)
	}
	if a == b {
		t.Error("the same credentials under two keys must give different fingerprints")
	}
	legacy := Fingerprint(fields, rt)
	if strings.TrimPrefix(a, KeyedPrefix) == legacy || none.Of(fields, rt) != legacy {
		t.Error("without a key the fingerprint is the legacy digest, and with one it is not")
	}
	if k1.Of(fields, rt) != a {
		t.Error("a keyed fingerprint is stable")
	}

	for _, tt := range []struct {
		name           string
		f              Fingerprinter
		recorded       string
		fields         []byte
		rt             string
		changed, known bool
	}{
		{"legacy, same credentials, keyed store", k1, legacy, fields, rt, false, true},
		{"legacy, same credentials, no key", none, legacy, fields, rt, false, true},
		{"legacy, new password", k1, legacy, []byte(`{"username":"u","password":"p2"}`), rt, true, true},
		{"legacy, new refresh token", none, legacy, fields, "rt-2", true, true},
		{"keyed, same credentials", k1, a, fields, rt, false, true},
		{"keyed, new password", k1, a, []byte(`{"username":"u","password":"p2"}`), rt, true, true},
		{"keyed with another key", k2, a, fields, rt, true, true},
		{"keyed, store without a key", none, a, fields, rt, false, false},
	} {
		changed, known := tt.f.Changed(tt.recorded, tt.fields, tt.rt)
		if changed != tt.changed || known != tt.known {
			t.Errorf("%s: changed %v known %v, want %v %v", tt.name, changed, known, tt.changed, tt.known)
		}
	}
}
