// Package api is the refresher's on-demand API, for services and operators:
//
//	POST /v1/connections/{id}/refresh  refresh now, on the urgent queue; with a
//	                                   body {"rejected_token_sha256": …} and an
//	                                   optional ?wait=, a consumer's report of
//	                                   a refused token (report.go)
//	POST /v1/connections/{id}/retry    the same, for a failing connection only
//	GET  /v1/connections/{id}          one connection: state, expiry, task, last attempt
//	GET  /v1/connections?state=…       connections in one state, paged
//	GET  /v1/connections/summary       connections per provider by token state
//
// Every call needs "Authorization: Bearer <API_TOKEN>". Answers are JSON and
// hold identifiers and counts only, never a credential or a token.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/token"
)

// Store finds and describes connections.
type Store interface {
	FindActive(ctx context.Context, id int64, integrationTypes []string) (token.DueConnection, error)
	Describe(ctx context.Context, id int64, integrationTypes []string) (token.Described, error)
	DuePage(ctx context.Context, integrationType string, dueBefore time.Time, after int64) ([]token.DueConnection, *int64, error)
	CredentialsChanged(ctx context.Context, recorded map[int64]string) (map[int64]bool, error)
	// HoldsToken reads the stored expiry and whether the stored access
	// token's SHA-256 is tokenSHA256 (mysql.Store: compared in MySQL).
	HoldsToken(ctx context.Context, id int64, tokenSHA256 string) (bool, *time.Time, error)
}

// Queue takes on-demand refreshes and tells the state of refresh tasks.
type Queue interface {
	EnqueueForced(ctx context.Context, p task.Payload) (bool, error)
	EnsureForced(ctx context.Context, p task.Payload, retry bool) (string, error)
	Inspect(ctx context.Context, connectionID int64) ([]task.Status, error)
	ListArchived() (map[int64]task.Archived, error)
}

// Census counts connections.
type Census interface {
	Take(ctx context.Context) ([]census.Count, error)
}

// Config of the API.
type Config struct {
	// Token is the bearer token callers present; required.
	Token string
	// IntegrationTypes are the configured ones: a connection of another
	// type is unknown to this service. Taken from Targets when empty.
	IntegrationTypes []string
	// Targets are the providers entries: each integration type's provider
	// kind and refresh window, for the connection view and list.
	Targets []token.Target
	// Cooldown is FAILURE_COOLDOWN: when the scanner tries a failing
	// connection again (default scan.DefaultFailureCooldown).
	Cooldown time.Duration
	// Timeout bounds one call's work (default 30s).
	Timeout time.Duration
	// Backlogs are the rate-limited marketplaces' backlogs: the summary
	// forecasts them.
	Backlogs []backlog.Named
}

// API serves /v1/.
type API struct {
	cfg    Config
	token  [sha256.Size]byte
	store  Store
	queue  Queue
	census Census
	log    *zap.Logger
	mux    *http.ServeMux
	cop    *http.CrossOriginProtection
}

var _ http.Handler = (*API)(nil)

// New returns the API.
func New(cfg Config, store Store, queue Queue, c Census, log *zap.Logger) (*API, error) {
	if cfg.Token == "" {
		return nil, errors.New("api: a token is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = scan.DefaultFailureCooldown
	}
	if len(cfg.IntegrationTypes) == 0 {
		for _, p := range cfg.Targets {
			cfg.IntegrationTypes = append(cfg.IntegrationTypes, p.IntegrationType)
		}
	}
	a := &API{cfg: cfg, token: sha256.Sum256([]byte(cfg.Token)), store: store, queue: queue, census: c,
		log: log.Named("api"), mux: http.NewServeMux(), cop: http.NewCrossOriginProtection()}
	a.mux.HandleFunc("POST /v1/connections/{id}/refresh", a.refresh)
	a.mux.HandleFunc("POST /v1/connections/{id}/retry", a.retry)
	a.mux.HandleFunc("GET /v1/connections/summary", a.summary)
	a.mux.HandleFunc("GET /v1/connections/{id}", a.show)
	a.mux.HandleFunc("GET /v1/connections", a.list)
	// Any other method or path answers JSON too, as every /v1 answer does.
	// (GET /v1/connections/summary needs no fallback of its own: another
	// method on it falls to /v1/connections/{id}'s, which allows GET too.)
	a.mux.HandleFunc("/v1/connections/{id}/refresh", methodNotAllowed(http.MethodPost))
	a.mux.HandleFunc("/v1/connections/{id}/retry", methodNotAllowed(http.MethodPost))
	a.mux.HandleFunc("/v1/connections/{id}", methodNotAllowed(http.MethodGet+", "+http.MethodHead))
	a.mux.HandleFunc("/v1/connections", methodNotAllowed(http.MethodGet+", "+http.MethodHead))
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API path: "+r.URL.Path)
	})
	return a, nil
}

// ServeHTTP refuses a state-changing request from another origin (403, see
// http.CrossOriginProtection: Sec-Fetch-Site, else Origin against Host),
// checks the bearer token, then routes. Browsers do not attach a bearer
// token by themselves, so this is defence in depth; services and tokenctl
// send neither header and pass.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := a.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="token-refresher"`)
		writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
		return
	}
	// A report's ?wait= extends the call's deadline by the wait (a bad
	// value extends nothing and is refused by the handler).
	timeout := a.cfg.Timeout
	if wait, ok := waitOf(r); ok {
		timeout += wait
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	a.mux.ServeHTTP(w, r.WithContext(ctx))
}

// authorized compares digests in constant time, so the token's length does
// not show in timing either.
func (a *API) authorized(r *http.Request) bool {
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	match := subtle.ConstantTimeCompare(got[:], a.token[:]) == 1
	return ok && strings.EqualFold(scheme, "Bearer") && match
}

// Queued is the answer to an accepted refresh.
type Queued struct {
	ConnectionID    int64  `json:"connection_id"`
	IntegrationType string `json:"integration_type"`
	TaskID          string `json:"task_id"`
	Status          string `json:"status"`
}

// pathID reads the {id} of the path, answering 400 when it is not one.
func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusBadRequest, "the connection id must be a positive whole number")
		return 0, false
	}
	return id, true
}

func (a *API) enqueue(w http.ResponseWriter, r *http.Request, id int64) {
	log := a.log.With(zap.Int64("connection_id", id))
	c, err := a.store.FindActive(r.Context(), id, a.cfg.IntegrationTypes)
	if errors.Is(err, token.ErrNotFound) {
		writeError(w, http.StatusNotFound, "connection "+strconv.FormatInt(id, 10)+" is unknown or not active")
		return
	}
	if err != nil {
		log.Error("on-demand refresh: cannot read the connection", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the database is not answering; try again")
		return
	}
	p := task.Payload{ConnectionID: c.ID, IntegrationType: c.IntegrationType, DueExpiry: c.ExpiresAt}
	queued, err := a.queue.EnqueueForced(r.Context(), p)
	if err != nil {
		log.Error("on-demand refresh: cannot enqueue", zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, "the queue is not answering; try again")
		return
	}
	if !queued {
		writeError(w, http.StatusConflict, "an on-demand refresh of connection "+strconv.FormatInt(id, 10)+" is already queued or running; it will answer this request")
		return
	}
	log.Info("on-demand refresh queued", zap.String("integration_type", c.IntegrationType))
	writeJSON(w, http.StatusAccepted, Queued{
		ConnectionID: c.ID, IntegrationType: c.IntegrationType, TaskID: task.ID(c.ID), Status: "queued",
	})
}

// Summary is the answer of GET /v1/connections/summary.
type Summary struct {
	At        time.Time      `json:"at"`
	Providers []census.Count `json:"providers"`
	// Backlog is, per rate-limited marketplace, the due connections
	// waiting for a rate slot and those that will lapse at the current
	// pace (internal/backlog).
	Backlog []backlog.Status `json:"backlog"`
	// Incomplete is set when some counts could not be taken; the
	// providers listed are right, others are missing.
	Incomplete bool `json:"incomplete,omitempty"`
}

func (a *API) summary(w http.ResponseWriter, r *http.Request) {
	at := time.Now().UTC()
	counts, err := a.census.Take(r.Context())
	if err != nil {
		a.log.Error("summary: census failed", zap.Error(err))
		if len(counts) == 0 {
			writeError(w, http.StatusServiceUnavailable, "cannot count connections now; try again")
			return
		}
	}
	if counts == nil {
		counts = []census.Count{}
	}
	queued, berr := backlog.Statuses(r.Context(), a.cfg.Backlogs, at)
	if berr != nil {
		a.log.Error("summary: backlog unreadable", zap.Error(berr))
	}
	writeJSON(w, http.StatusOK, Summary{At: at, Providers: counts, Backlog: queued, Incomplete: err != nil || berr != nil})
}

// methodNotAllowed answers 405 naming the methods a path takes.
func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here; use "+allow)
	}
}

type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
