package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash"
	"strings"
)

// Fields is a connection's parsed inputFields object.
type Fields map[string]json.RawMessage

// ParseFields parses inputFields. Its errors are permanent failures whose
// reasons describe the problem without quoting any of the input: a JSON
// syntax error message would otherwise carry a character of a password.
func ParseFields(raw []byte) (Fields, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, Permanent("malformed inputFields: empty")
	}
	var f Fields
	if err := json.Unmarshal(trimmed, &f); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, Permanent("malformed inputFields: not valid JSON (syntax error at byte %d)", syntax.Offset)
		case errors.As(err, &typ):
			return nil, Permanent("malformed inputFields: a JSON %s, not an object", typ.Value)
		default:
			return nil, Permanent("malformed inputFields: not a JSON object")
		}
	}
	return f, nil
}

// String returns the string field name, "" when absent or null. A present
// field of another JSON type is an error naming the field, never its value.
func (f Fields) String(name string) (string, error) {
	raw, ok := f[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", Permanent("malformed inputFields: %q is not a string", name)
	}
	return s, nil
}

// Required is String for a field that must be present and non-empty.
func (f Fields) Required(name string) (string, error) {
	s, err := f.String(name)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", Permanent("malformed inputFields: %q is missing or empty", name)
	}
	return s, nil
}

// Fingerprint is the legacy, unkeyed digest of what a connection
// authenticates with: its inputFields and its refresh token, SHA-256,
// domain-separated so it matches no plain hash of the input. Failures
// recorded before FINGERPRINT_KEY (or without it) carry it; Fingerprinter
// computes it when it has no key and compares it whatever its key.
//
// Anyone who reads such a record (Redis, the archived task) can test
// guesses of a password against it offline: hence Fingerprinter's keyed
// form.
func Fingerprint(inputFields []byte, refreshToken string) string {
	h := sha256.New()
	writeCredentials(h, inputFields, refreshToken)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func writeCredentials(h hash.Hash, inputFields []byte, refreshToken string) {
	h.Write([]byte("token-refresher/credentials/v2\x00"))
	h.Write(bytes.TrimSpace(inputFields))
	h.Write([]byte{0})
	h.Write([]byte(refreshToken))
}

// KeyedPrefix starts a keyed fingerprint (HMAC-SHA256, version 1); a
// fingerprint without it is the legacy Fingerprint.
const KeyedPrefix = "h1:"

// Fingerprinter makes and compares the fingerprint kept beside a permanent
// failure, so a later scan can tell that an operator fixed the credentials
// (a new password, or a new refresh token after invalid_grant) without
// keeping them. With a key (FINGERPRINT_KEY) it is KeyedPrefix and an
// HMAC-SHA256 of the credentials, which no one without the key can test a
// guess against; without one it is the legacy Fingerprint. Its zero value
// has no key.
type Fingerprinter struct {
	key []byte
}

// NewFingerprinter returns a Fingerprinter keyed with key (none when key is
// empty).
func NewFingerprinter(key []byte) Fingerprinter {
	if len(key) == 0 {
		return Fingerprinter{}
	}
	return Fingerprinter{key: bytes.Clone(key)}
}

// Keyed says whether f has a key.
func (f Fingerprinter) Keyed() bool { return len(f.key) > 0 }

// Of is the fingerprint a new failure records.
func (f Fingerprinter) Of(inputFields []byte, refreshToken string) string {
	if !f.Keyed() {
		return Fingerprint(inputFields, refreshToken)
	}
	h := hmac.New(sha256.New, f.key)
	writeCredentials(h, inputFields, refreshToken)
	return KeyedPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// Changed compares a recorded fingerprint with the credentials now.
// known is false when f cannot tell: a keyed fingerprint while f has no
// key. A keyed fingerprint taken with another key (a rotated
// FINGERPRINT_KEY) counts as changed, which costs one early attempt.
func (f Fingerprinter) Changed(recorded string, inputFields []byte, refreshToken string) (changed, known bool) {
	var now string
	switch {
	case strings.HasPrefix(recorded, KeyedPrefix):
		if !f.Keyed() {
			return false, false
		}
		now = f.Of(inputFields, refreshToken)
	default:
		now = Fingerprint(inputFields, refreshToken)
	}
	return !hmac.Equal([]byte(now), []byte(recorded)), true
}

// Login parses inputFields and returns the seller's username and password,
// both required: the credentials of the username/password flows (Ajio,
// Unicommerce).
func Login(inputFields []byte) (username, password string, err error) {
	fields, err := ParseFields(inputFields)
	if err != nil {
		return "", "", err
	}
	if username, err = fields.Required("username"); err != nil {
		return "", "", err
	}
	if password, err = fields.Required("password"); err != nil {
		return "", "", err
	}
	return username, password, nil
}
