// Package webhook tells operators' systems when a connection fails
// permanently and when it recovers, by POSTing a JSON event signed the
// Standard Webhooks way (https://www.standardwebhooks.com/, the convention of
// Svix and close to Stripe's) to every configured URL.
//
// The refresh handler calls Notifier.Failed where it records a permanent
// failure and Notifier.Refreshed after every stored token. A per-connection
// record in Redis turns those calls into state changes, atomically (one Lua
// script), so a connection failing for a day sends one connection.failed,
// however many cooldowns and replicas record it again. Each event becomes one
// asynq task per URL on its own queue, served by its own workers
// (Deliverer): at-least-once, retried with backoff, visible in asynqmon, and a
// dead receiver never takes a refresh worker.
package webhook

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eshopbox/token-refresher/internal/httpurl"
)

// Event names.
const (
	EventFailed    = "connection.failed"    // the refresh failed permanently (rejected credentials, malformed inputFields)
	EventRecovered = "connection.recovered" // a token was stored again after a connection.failed
)

// Events are all event names, the default of WEBHOOK_EVENTS.
var Events = []string{EventFailed, EventRecovered}

// TypeDeliver is the asynq task type of one event's delivery to one URL.
const TypeDeliver = "webhook:deliver"

// Queue is the delivery queue that goes with a refresh queue.
func Queue(refreshQueue string) string { return refreshQueue + "_webhooks" }

// Event is the JSON body POSTed to receivers. It holds identifiers, names
// and times, and the permanent failure's secret-free reason: never a
// credential, a token or the credentials' fingerprint. Its bytes are fixed
// when the state changes, so every redelivery sends the same body.
type Event struct {
	// ID is unique per state change ("msg_" and 26 base32 characters of
	// random bytes), the same in the webhook-id header and on every
	// redelivery: receivers deduplicate on it.
	ID string `json:"id"`
	// Type is connection.failed or connection.recovered.
	Type string `json:"type"`
	// Timestamp is when the state changed (RFC 3339, UTC).
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is the connection an event is about.
type Data struct {
	ConnectionID    int64  `json:"connection_id"`
	IntegrationType string `json:"integration_type"`
	Provider        string `json:"provider"`
	// Reason is the permanent failure's reason (connection.failed only).
	Reason string `json:"reason,omitempty"`
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Endpoint is one receiver URL. The URL may carry a token of its own (in the
// path or the query), so it is never logged, put in a task payload or quoted
// in an error: Key names it instead.
type Endpoint struct {
	URL string
	// Key is the first 12 hex characters of the URL's SHA-256: task payloads
	// name the endpoint by it.
	Key string
	// Host is the URL's host, for logs.
	Host string
}

// ParseURLs reads WEBHOOK_URLS: comma-separated absolute http(s) URLs, each
// at most once, http:// only to a loopback host. Errors name the entry by
// position, never by its text.
func ParseURLs(s string) ([]Endpoint, error) { return ParseURLsWith(s, false) }

// ParseURLsWith is ParseURLs that, with allowInsecureHTTP
// (WEBHOOK_ALLOW_INSECURE_HTTP), also accepts http:// to any host. Events
// are signed but not encrypted, and a URL may carry the receiver's token.
func ParseURLsWith(s string, allowInsecureHTTP bool) ([]Endpoint, error) {
	var out []Endpoint
	seen := map[string]bool{}
	for i, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		// A query may carry the receiver's token, so it is allowed (and
		// never shown); user:password is not.
		u, err := httpurl.Absolute(raw)
		if err != nil || u.User != nil {
			return nil, fmt.Errorf("entry %d is not an absolute http(s) URL without user:password", i+1)
		}
		if err := httpurl.Secure(u, allowInsecureHTTP); err != nil {
			return nil, fmt.Errorf("entry %d %w", i+1, err)
		}
		sum := sha256.Sum256([]byte(raw))
		key := hex.EncodeToString(sum[:6])
		if seen[key] {
			return nil, fmt.Errorf("entry %d is listed twice", i+1)
		}
		seen[key] = true
		out = append(out, Endpoint{URL: raw, Key: key, Host: u.Host})
	}
	return out, nil
}

// ParseSecret reads WEBHOOK_SECRET. A value starting with "whsec_" is the
// Standard Webhooks form: the rest is standard base64 of the key bytes (as
// Svix shows it). Any other value is the key's bytes as given. The key must
// be at least 16 bytes (the spec recommends 24 to 64).
func ParseSecret(s string) ([]byte, error) {
	var key []byte
	if rest, ok := strings.CutPrefix(s, "whsec_"); ok {
		b, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, errors.New("starts with whsec_ but the rest is not standard base64")
		}
		key = b
	} else {
		key = []byte(s)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("is %d bytes; at least 16 are needed (24 to 64 recommended)", len(key))
	}
	return key, nil
}
