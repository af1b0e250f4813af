package token

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// Fingerprint is a one-way digest of what a connection authenticates with:
// its inputFields and its refresh token. It is kept beside a permanent
// failure so a later scan can tell that an operator fixed either (a new
// password, or a new refresh token after invalid_grant). It is
// domain-separated so it matches no plain hash of the input.
func Fingerprint(inputFields []byte, refreshToken string) string {
	h := sha256.New()
	h.Write([]byte("token-refresher/credentials/v2\x00"))
	h.Write(bytes.TrimSpace(inputFields))
	h.Write([]byte{0})
	h.Write([]byte(refreshToken))
	return hex.EncodeToString(h.Sum(nil)[:16])
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
