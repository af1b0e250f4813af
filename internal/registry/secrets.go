package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
)

// secretName matches header and parameter names that usually carry a
// secret: Authorization, X-Api-Key, api_key, client_secret, access_token,
// password, a cookie, a signature.
var secretName = regexp.MustCompile(`(?i)(auth|key|secret|token|passw|pwd|cookie|session|signature|credential)`)

// InlineSecrets are start-up warnings about values in the providers file
// that look like secrets but have no *_env alternative yet: an http_token
// entry's static headers and constants (const) whose name looks like a
// secret's. Each names the entry and the header or field, never the
// value; allow_inline_secrets: true on the entry silences them.
func InlineSecrets(entries []Entry) []string {
	var out []string
	for _, e := range entries {
		if e.Kind != KindHTTPToken || e.Spec == nil || e.AllowInlineSecrets {
			continue
		}
		r := e.Spec.Request
		var names []string
		for _, h := range sortedKeys(r.Headers) {
			if secretName.MatchString(h) && strings.TrimSpace(r.Headers[h]) != "" {
				names = append(names, "request.headers."+h)
			}
		}
		for _, part := range []struct {
			key string
			m   map[string]httptokenValue
		}{{"request.fields", fieldValues(r.Fields)}, {"request.query", fieldValues(r.Query)}} {
			for _, f := range sortedKeys(part.m) {
				if part.m[f].isConst && secretName.MatchString(f) {
					names = append(names, part.key+"."+f)
				}
			}
		}
		if len(names) > 0 {
			out = append(out, fmt.Sprintf("%s: %s look like secrets written in the providers file, which more people "+
				"read than should see them; move them out of the file when the marketplace allows (a per-seller "+
				"value belongs in inputFields), or set allow_inline_secrets: true on the entry to silence this",
				e.Label(), strings.Join(names, ", ")))
		}
	}
	return out
}

type httptokenValue struct{ isConst bool }

func fieldValues(m map[string]httptoken.Value) map[string]httptokenValue {
	out := make(map[string]httptokenValue, len(m))
	for k, v := range m {
		out[k] = httptokenValue{isConst: v.Const != nil && strings.TrimSpace(*v.Const) != ""}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
