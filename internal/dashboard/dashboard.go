// Package dashboard embeds asynqmon, the web UI of the refresh queues, behind
// basic auth (asynqmon has none of its own). Its formatters show a refresh
// task as "connection 11 · type 16 · due expiry …" and a permanent failure as
// its reason: the payload holds identifiers only, and nothing else of a task
// (another application's payload, the credentials' fingerprint) is shown.
package dashboard

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"

	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// Path is where the refresher serves the dashboard.
const Path = "/monitoring"

// Config of a dashboard.
type Config struct {
	// User and Password are the basic-auth credentials; both are required.
	User, Password string
	// ReadOnly lets users look but not run, delete or archive tasks.
	ReadOnly bool
	// Redis is asynq's Redis.
	Redis asynq.RedisConnOpt
	// RootPath is the URL path it is served under (default Path; "/" for a
	// dashboard on its own).
	RootPath string
}

// Dashboard is asynqmon behind basic auth, refusing state-changing
// cross-origin requests.
type Dashboard struct {
	mon      *asynqmon.HTTPHandler
	cop      *http.CrossOriginProtection
	user     [sha256.Size]byte
	password [sha256.Size]byte
	throttle *throttle
}

var _ http.Handler = (*Dashboard)(nil)

// New returns the dashboard. It opens its own Redis connections; Close
// releases them.
func New(cfg Config) (*Dashboard, error) {
	if cfg.User == "" || cfg.Password == "" {
		return nil, errors.New("dashboard: a user and a password are required")
	}
	if cfg.Redis == nil {
		return nil, errors.New("dashboard: a Redis connection is required")
	}
	// asynqmon panics on a connection it cannot use; refuse it here instead.
	c, ok := cfg.Redis.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("dashboard: unsupported Redis connection %T", cfg.Redis)
	}
	c.Close()
	if cfg.RootPath == "" {
		cfg.RootPath = Path
	}
	if cfg.RootPath == "/" {
		cfg.RootPath = ""
	}
	mon := Monitor(cfg.Redis, cfg.RootPath, cfg.ReadOnly)
	return &Dashboard{mon: mon, cop: http.NewCrossOriginProtection(), user: sha256.Sum256([]byte(cfg.User)), password: sha256.Sum256([]byte(cfg.Password)), throttle: newThrottle()}, nil
}

// Monitor is asynqmon with the project's formatters (FormatPayload,
// FormatResult), served under rootPath ("" for "/"), without auth: New puts
// it behind basic auth; the demo serves it on loopback. Close releases its
// Redis connections.
func Monitor(redis asynq.RedisConnOpt, rootPath string, readOnly bool) *asynqmon.HTTPHandler {
	return asynqmon.New(asynqmon.Options{
		RootPath:         rootPath,
		RedisConnOpt:     redis,
		ReadOnly:         readOnly,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(FormatPayload),
		ResultFormatter:  asynqmon.ResultFormatterFunc(FormatResult),
	})
}

// ServeHTTP refuses a state-changing request from another origin (403),
// refuses a client locked out after failed logins (429, throttle.go), asks
// for basic auth, then serves asynqmon. Every answer carries the headers
// that forbid framing and content sniffing (ops.SetPageHeaders).
//
// A browser attaches cached basic-auth credentials to any request to this
// host, a hostile page's form POST included: without the check, such a page
// could pause the queues or delete tasks with the operator's credentials.
// http.CrossOriginProtection (Go 1.25) lets GET, HEAD and OPTIONS through
// and refuses other methods whose Sec-Fetch-Site is not same-origin or none,
// or, from browsers without Sec-Fetch-Site, whose Origin host differs from
// Host. asynqmon's own page calls its API from the same origin and is
// unaffected; curl and other non-browser clients send neither header and
// pass. The check comes before auth, so a refused request learns nothing
// of the credentials.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ops.SetPageHeaders(w.Header())
	if err := d.cop.Check(r); err != nil {
		http.Error(w, "cross-origin request refused: the dashboard changes state only from its own pages", http.StatusForbidden)
		return
	}
	key := client(r)
	if left := d.throttle.locked(key); left > 0 {
		refuse(w, left)
		return
	}
	if !d.authorized(r) {
		// A request without credentials is how a browser first asks for
		// the login box: only a wrong user or password counts as a failure.
		if _, _, ok := r.BasicAuth(); ok {
			d.throttle.fail(key)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="token-refresher dashboard", charset="UTF-8"`)
		http.Error(w, "authentication required", http.StatusUnauthorized)
		return
	}
	// The SPA's pages must not be cached by shared proxies: they are behind
	// auth.
	w.Header().Set("Cache-Control", "no-store")
	d.mon.ServeHTTP(w, r)
}

// authorized compares digests in constant time, user and password both
// always, so neither their length nor which one was wrong shows in timing.
func (d *Dashboard) authorized(r *http.Request) bool {
	user, password, ok := r.BasicAuth()
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(password))
	match := subtle.ConstantTimeCompare(u[:], d.user[:]) & subtle.ConstantTimeCompare(p[:], d.password[:])
	return ok && match == 1
}

// Close releases asynqmon's Redis connections.
func (d *Dashboard) Close() error { return d.mon.Close() }

// FormatPayload shows a refresh task's payload (and a scheduled refresh's
// wake-up) as its identifiers, and a
// webhook delivery as its event and endpoint key. Payloads of other task
// types (another application sharing the Redis) are not shown: nothing says
// they are free of secrets.
func FormatPayload(taskType string, payload []byte) string {
	if taskType == webhook.TypeDeliver {
		return formatDelivery(payload)
	}
	if taskType != task.TypeRefresh && taskType != task.TypeWake {
		return fmt.Sprintf("%d-byte payload of task type %q (not shown)", len(payload), taskType)
	}
	// A wake-up carries the payload of the refresh it enqueues.
	p, err := task.Parse(asynq.NewTask(task.TypeRefresh, payload))
	if err != nil {
		return fmt.Sprintf("malformed refresh payload (%d bytes, not shown)", len(payload))
	}
	s := fmt.Sprintf("connection %d · type %s · due expiry %s", p.ConnectionID, p.IntegrationType, expiry(p.DueExpiry))
	if p.Forced {
		s += " · on demand"
	}
	if taskType == task.TypeWake {
		s += " · scheduled refresh"
	}
	return s
}

// FormatResult shows a permanent failure's reason and time; the
// fingerprint of the credentials stays out of sight.
func FormatResult(_ string, result []byte) string {
	if len(result) == 0 {
		return ""
	}
	f, err := task.ParseFailure(result)
	if err != nil || f.Reason == "" {
		return fmt.Sprintf("%d-byte result (not shown)", len(result))
	}
	s := "failed: " + strings.TrimSpace(f.Err().Reason)
	if !f.At.IsZero() {
		s += " (at " + f.At.UTC().Format(time.RFC3339) + ")"
	}
	return s
}

func formatDelivery(payload []byte) string {
	var p webhook.Payload
	var ev webhook.Event
	if json.Unmarshal(payload, &p) != nil || json.Unmarshal(p.Event, &ev) != nil {
		return fmt.Sprintf("malformed webhook delivery (%d bytes, not shown)", len(payload))
	}
	return fmt.Sprintf("%s · connection %d · event %s · endpoint %s", ev.Type, ev.Data.ConnectionID, ev.ID, p.Endpoint)
}

func expiry(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never (no token yet)"
	}
	return t.UTC().Format(time.RFC3339)
}
