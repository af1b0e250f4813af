// Package config reads the settings of the binaries from the environment
// into one struct per component, fills the defaults in one place and
// validates them, so a bad setting stops start-up with one line naming it.
// Only cmd/ calls it.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/redisconn"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/webhook"
)

// SettingError names the setting that stopped start-up.
type SettingError struct {
	Name string
	Err  error
}

func (e *SettingError) Error() string { return "invalid setting " + e.Name + ": " + e.Err.Error() }

func (e *SettingError) Unwrap() error { return e.Err }

// Getenv is os.Getenv, injected so tests need no process environment.
type Getenv func(string) string

// Common holds the settings both binaries share.
type Common struct {
	WMSDSN    string // WMS_DB_DSN
	IEDSN     string // IE_DB_DSN
	Redis     asynq.RedisConnOpt
	Providers []registry.Entry
	Location  *time.Location // DB_TIME_ZONE
	Queue     string         // REFRESH_QUEUE
	// QueueShards is REFRESH_QUEUE_SHARDS: how many asynq queues the scan
	// tasks are spread over (task.Shard); unset, 1 on one Redis and
	// task.DefaultClusterShards on a Redis Cluster.
	QueueShards int
	LogLevel    string // LOG_LEVEL
	LogFormat   string // LOG_FORMAT
	HTTPAddr    string // HTTP_ADDR
	// PprofAddr is where the Go runtime's profiles are served (PPROF_ADDR,
	// a loopback host:port; empty: not served).
	PprofAddr string
	// DBMaxOpenConns caps each database pool (DB_MAX_OPEN_CONNS).
	DBMaxOpenConns int
	// TaskTimeout bounds one attempt of a refresh task (REFRESH_TIMEOUT).
	TaskTimeout time.Duration
	// DBTLS is how the DSNs use TLS: Registered when DB_TLS_CA_FILE is set
	// (its CA, and DB_TLS_CERT_FILE and DB_TLS_KEY_FILE, are registered
	// with go-sql-driver as mysql.TLSConfigName while the settings are
	// read), AllowInsecure from DB_TLS_ALLOW_INSECURE. Pass it to
	// mysql.Open.
	DBTLS mysql.TLS
	// FingerprintKey is FINGERPRINT_KEY: the HMAC key of the credentials'
	// fingerprints kept with permanent failures (token.Fingerprinter),
	// the same in the scanner and the refresher; nil when unset (the
	// legacy unkeyed digest).
	FingerprintKey []byte
	// FullScanInterval is FULL_SCAN_INTERVAL: the time between the full
	// passes that walk the fleet, when the optional indexes let the passes
	// between them read only what is due (internal/dueset).
	FullScanInterval time.Duration
}

// Warnings are what start-up logs about the settings: choices that work
// but weaken a defence, each with the setting that changes it.
func (c Common) Warnings() []string {
	var w []string
	if c.FingerprintKey == nil {
		w = append(w, "FINGERPRINT_KEY is not set: the credentials' fingerprint kept with a permanent failure is "+
			"an unkeyed SHA-256, against which anyone who reads Redis can test password guesses offline; "+
			"set it (the same in the scanner and the refresher) to make it an HMAC")
	}
	w = append(w, registry.InlineSecrets(c.Providers)...)
	if c.DBTLS.AllowInsecure {
		w = append(w, "DB_TLS_ALLOW_INSECURE=true: a DSN may connect without verifying the database server's certificate")
	}
	return w
}

// Scanner holds the scanner's settings.
type Scanner struct {
	Common
	Interval    time.Duration // SCAN_INTERVAL
	Cooldown    time.Duration // FAILURE_COOLDOWN
	Concurrency int           // SCAN_CONCURRENCY: enqueues in flight
	ChunkSize   int           // SCAN_CHUNK_SIZE: ids per query
}

// Refresher holds the refresher's settings.
type Refresher struct {
	Common
	Concurrency     int           // REFRESH_CONCURRENCY
	RetryMaxDelay   time.Duration // RETRY_MAX_DELAY
	RetryBaseDelay  time.Duration // RETRY_BASE_DELAY: the first retry comes within it
	RetryCheck      time.Duration // RETRY_CHECK_INTERVAL: how often due retries are moved back to the queue
	DrainTimeout    time.Duration // DRAIN_TIMEOUT
	BreakerFailures int           // BREAKER_FAILURES: consecutive transient failures that open a marketplace's breaker
	BreakerCooldown time.Duration // BREAKER_COOLDOWN: how long it stays open before a probe
	// Cooldown is FAILURE_COOLDOWN, the scanner's: the API tells from it
	// when a failing connection is tried again.
	Cooldown          time.Duration
	APIToken          string // API_TOKEN
	DashboardUser     string // DASHBOARD_USER
	DashboardPassword string // DASHBOARD_PASSWORD
	DashboardReadOnly bool   // DASHBOARD_READ_ONLY
	Webhooks          Webhooks
	// CensusInterval is how often the replica holding the census lease
	// counts connections for the gauges (CENSUS_INTERVAL).
	CensusInterval time.Duration
	// OutboxKey is OUTBOX_KEY: 32 bytes, given as base64 or 64 hex
	// characters, sealing (AES-256-GCM) the tokens kept in Redis while the
	// database refuses their write; nil when unset (kept in memory only).
	OutboxKey []byte
}

// Webhooks are the failure notifications' settings (off without URLs).
type Webhooks struct {
	Endpoints   []webhook.Endpoint // WEBHOOK_URLS, comma-separated
	Secret      []byte             // WEBHOOK_SECRET: bytes as given, or whsec_ + base64
	Events      []string           // WEBHOOK_EVENTS: connection.failed, connection.recovered (default both)
	Concurrency int                // WEBHOOK_CONCURRENCY: deliveries at once (default 4)
	Timeout     time.Duration      // WEBHOOK_TIMEOUT: one POST (default 10s)
	MaxRetry    int                // WEBHOOK_MAX_RETRY: retries before a delivery is archived (default 25)
}

// reader reads one binary's settings. Every name it reads must be one of
// bin's Settings, and every default comes from there.
type reader struct {
	bin Binary
	get Getenv
	err error
}

// env is the variable's value; a name that is not one of bin's Settings
// is a programming error, caught by the loaders' tests.
func (r *reader) env(name string) string {
	r.setting(name)
	return r.get(name)
}

func (r *reader) setting(name string) Setting {
	s, ok := lookup(r.bin, name)
	if !ok {
		panic("config: the " + string(r.bin) + " reads " + name + ", which is not one of its Settings")
	}
	return s
}

func (r *reader) fail(name string, err error) {
	if r.err == nil {
		r.err = &SettingError{Name: name, Err: err}
	}
}

func (r *reader) str(name string) string {
	if v := strings.TrimSpace(r.env(name)); v != "" {
		return v
	}
	return r.setting(name).Default
}

func (r *reader) duration(name string) time.Duration {
	def, err := time.ParseDuration(r.setting(name).Default)
	if err != nil {
		panic("config: the default of " + name + " is not a duration")
	}
	v := strings.TrimSpace(r.env(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		r.fail(name, fmt.Errorf("%q is not a duration (like 30s, 1m, 1h)", v))
		return def
	}
	if d <= 0 {
		r.fail(name, fmt.Errorf("%q must be positive", v))
	}
	return d
}

func (r *reader) integer(name string, lo, hi int) int {
	def, err := strconv.Atoi(r.setting(name).Default)
	if err != nil {
		panic("config: the default of " + name + " is not a whole number")
	}
	v := strings.TrimSpace(r.env(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		r.fail(name, fmt.Errorf("%q is not a whole number", v))
		return def
	}
	if n < lo || n > hi {
		r.fail(name, fmt.Errorf("%d is outside %d..%d", n, lo, hi))
	}
	return n
}

func (r *reader) boolean(name string) bool {
	def, err := strconv.ParseBool(r.setting(name).Default)
	if err != nil {
		panic("config: the default of " + name + " is not true or false")
	}
	v := strings.TrimSpace(r.env(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, fmt.Errorf("%q is not true or false", v))
	}
	return b
}

func (r *reader) common() Common {
	var c Common
	c.LogLevel = r.str("LOG_LEVEL")
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		r.fail("LOG_LEVEL", err)
	}
	c.LogFormat = r.str("LOG_FORMAT")
	if c.LogFormat != "json" && c.LogFormat != "console" {
		r.fail("LOG_FORMAT", fmt.Errorf("%q is not json or console", c.LogFormat))
	}
	zone := r.str("DB_TIME_ZONE")
	loc, err := time.LoadLocation(zone)
	if err != nil {
		r.fail("DB_TIME_ZONE", fmt.Errorf("%q is not a known time zone", zone))
		loc = time.UTC
	}
	c.Location = loc

	c.FullScanInterval = r.duration("FULL_SCAN_INTERVAL")
	c.DBTLS = r.dbTLS()
	c.WMSDSN = r.dsn("WMS_DB_DSN", loc, c.DBTLS)
	c.IEDSN = r.dsn("IE_DB_DSN", loc, c.DBTLS)

	redisURL := r.str("REDIS_URL")
	opt, err := redisconn.ParseURL(redisURL)
	if err != nil {
		r.fail("REDIS_URL", err)
	}
	c.Redis = opt

	ajioBase := r.str("AJIO_BASE_URL")
	allowAjioHTTP := r.boolean("AJIO_ALLOW_INSECURE_HTTP")
	if ajioBase != "" {
		if u, err := httpurl.Absolute(ajioBase); err != nil {
			r.fail("AJIO_BASE_URL", err)
		} else if err := httpurl.Secure(u, allowAjioHTTP); err != nil {
			r.fail("AJIO_BASE_URL", fmt.Errorf("%w, or set AJIO_ALLOW_INSECURE_HTTP=true", err))
		}
	}
	if path := r.str("PROVIDERS_FILE"); path != "" {
		entries, err := registry.Load(path, ajioBase, r.get)
		if err != nil {
			r.fail("PROVIDERS_FILE", fmt.Errorf("%s: %w", path, err))
		}
		c.Providers = entries
	} else {
		c.Providers = registry.Defaults(ajioBase)
	}

	c.Queue = r.str("REFRESH_QUEUE")
	c.QueueShards = 1
	if _, cluster := opt.(redisconn.ClusterOpt); cluster {
		c.QueueShards = task.DefaultClusterShards
	}
	if v := strings.TrimSpace(r.env("REFRESH_QUEUE_SHARDS")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			r.fail("REFRESH_QUEUE_SHARDS", fmt.Errorf("%q is not a whole number", v))
		case n < 1 || n > task.MaxShards:
			r.fail("REFRESH_QUEUE_SHARDS", fmt.Errorf("%d is outside 1..%d", n, task.MaxShards))
		default:
			c.QueueShards = n
		}
	}
	c.HTTPAddr = r.str("HTTP_ADDR")
	if c.PprofAddr = r.str("PPROF_ADDR"); c.PprofAddr != "" {
		if err := ops.CheckProfilingAddr(c.PprofAddr); err != nil {
			r.fail("PPROF_ADDR", err)
		}
	}
	if v := strings.TrimSpace(r.env("FINGERPRINT_KEY")); v != "" {
		if len(v) < 32 {
			r.fail("FINGERPRINT_KEY", errors.New("shorter than 32 characters (openssl rand -base64 32 makes one)"))
		}
		c.FingerprintKey = []byte(v)
	}
	c.DBMaxOpenConns = r.integer("DB_MAX_OPEN_CONNS", 1, 10000)
	c.TaskTimeout = r.duration("REFRESH_TIMEOUT")
	return c
}

func (r *reader) dsn(name string, loc *time.Location, t mysql.TLS) string {
	v := strings.TrimSpace(r.env(name))
	if v == "" {
		r.fail(name, errors.New("is not set (a go-sql-driver DSN such as user:password@tcp(127.0.0.1:3306)/dbname)"))
		return ""
	}
	if _, err := mysql.ParseDSNWith(v, loc, t); err != nil {
		r.fail(name, err)
	}
	return v
}

// dbTLS reads DB_TLS_CA_FILE, DB_TLS_CERT_FILE, DB_TLS_KEY_FILE and
// DB_TLS_ALLOW_INSECURE. The files are read now, and a fault names the
// setting (and the path), never a byte of the file.
func (r *reader) dbTLS() mysql.TLS {
	t := mysql.TLS{AllowInsecure: r.boolean("DB_TLS_ALLOW_INSECURE")}
	ca := r.str("DB_TLS_CA_FILE")
	cert := r.str("DB_TLS_CERT_FILE")
	key := r.str("DB_TLS_KEY_FILE")
	if ca == "" {
		if cert != "" || key != "" {
			name := "DB_TLS_CERT_FILE"
			if cert == "" {
				name = "DB_TLS_KEY_FILE"
			}
			r.fail(name, errors.New("needs DB_TLS_CA_FILE (the CA that signs the database server's certificate)"))
		}
		return t
	}
	b, err := os.ReadFile(ca)
	if err != nil {
		r.fail("DB_TLS_CA_FILE", err)
		return t
	}
	roots, err := mysql.CertPool(b)
	if err != nil {
		r.fail("DB_TLS_CA_FILE", fmt.Errorf("%s %w", ca, err))
		return t
	}
	var certs []tls.Certificate
	switch {
	case cert == "" && key != "":
		r.fail("DB_TLS_CERT_FILE", errors.New("is not set; DB_TLS_KEY_FILE needs it"))
		return t
	case cert != "" && key == "":
		r.fail("DB_TLS_KEY_FILE", errors.New("is not set; DB_TLS_CERT_FILE needs it"))
		return t
	case cert != "":
		certPEM, err := os.ReadFile(cert)
		if err != nil {
			r.fail("DB_TLS_CERT_FILE", err)
			return t
		}
		keyPEM, err := os.ReadFile(key)
		if err != nil {
			r.fail("DB_TLS_KEY_FILE", err)
			return t
		}
		// crypto/tls's errors say what is wrong, never what the files hold.
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			r.fail("DB_TLS_KEY_FILE", fmt.Errorf("%s with DB_TLS_CERT_FILE %s is not a usable key pair: %w", key, cert, err))
			return t
		}
		certs = []tls.Certificate{pair}
	}
	if err := mysql.RegisterTLS(roots, certs); err != nil {
		r.fail("DB_TLS_CA_FILE", err)
		return t
	}
	t.Registered = true
	return t
}

// LoadScanner reads the scanner's settings.
func LoadScanner(get Getenv) (Scanner, error) {
	r := &reader{bin: BinScanner, get: get}
	s := Scanner{Common: r.common()}
	s.Interval = r.duration("SCAN_INTERVAL")
	s.Cooldown = r.duration("FAILURE_COOLDOWN")
	s.Concurrency = r.integer("SCAN_CONCURRENCY", 1, 1024)
	s.ChunkSize = r.integer("SCAN_CHUNK_SIZE", 1, 50000)
	if r.err == nil {
		for _, e := range s.Providers {
			// A scan must come around at least twice inside the refresh
			// window, or a token can lapse between two scans plus a retry.
			if s.Interval > e.Before()/2 {
				r.fail("SCAN_INTERVAL", fmt.Errorf("%s is not well under refresh_before %s of %s (at most half of it)",
					s.Interval, e.Before(), e.Name()))
				break
			}
		}
	}
	return s, r.err
}

// LoadRefresher reads the refresher's settings.
func LoadRefresher(get Getenv) (Refresher, error) {
	r := &reader{bin: BinRefresher, get: get}
	s := Refresher{Common: r.common()}
	s.Concurrency = r.integer("REFRESH_CONCURRENCY", 1, 10000)
	s.RetryMaxDelay = r.duration("RETRY_MAX_DELAY")
	s.RetryBaseDelay = r.duration("RETRY_BASE_DELAY")
	s.RetryCheck = r.duration("RETRY_CHECK_INTERVAL")
	if r.err == nil && s.RetryBaseDelay > s.RetryMaxDelay {
		r.fail("RETRY_BASE_DELAY", fmt.Errorf("%s is longer than RETRY_MAX_DELAY %s", s.RetryBaseDelay, s.RetryMaxDelay))
	}
	s.DrainTimeout = r.duration("DRAIN_TIMEOUT")
	s.BreakerFailures = r.integer("BREAKER_FAILURES", 1, 1000)
	s.BreakerCooldown = r.duration("BREAKER_COOLDOWN")
	s.Cooldown = r.duration("FAILURE_COOLDOWN")
	s.APIToken = r.str("API_TOKEN")
	s.DashboardUser = r.str("DASHBOARD_USER")
	s.DashboardPassword = r.str("DASHBOARD_PASSWORD")
	s.DashboardReadOnly = r.boolean("DASHBOARD_READ_ONLY")
	if (s.DashboardUser == "") != (s.DashboardPassword == "") {
		r.fail("DASHBOARD_PASSWORD", errors.New("DASHBOARD_USER and DASHBOARD_PASSWORD go together"))
	}
	if s.DashboardPassword != "" {
		r.dashboardPassword(s.DashboardPassword)
	}
	if s.APIToken != "" && len(s.APIToken) < 16 {
		r.fail("API_TOKEN", errors.New("shorter than 16 characters"))
	}
	s.Webhooks = r.webhooks()
	s.CensusInterval = r.duration("CENSUS_INTERVAL")
	if v := strings.TrimSpace(r.env("OUTBOX_KEY")); v != "" {
		key, err := outbox.ParseKey(v)
		if err != nil {
			r.fail("OUTBOX_KEY", err)
		}
		s.OutboxKey = key
	}
	return s, r.err
}

func (r *reader) webhooks() Webhooks {
	var w Webhooks
	eps, err := webhook.ParseURLsWith(r.env("WEBHOOK_URLS"), r.boolean("WEBHOOK_ALLOW_INSECURE_HTTP"))
	if err != nil {
		r.fail("WEBHOOK_URLS", err)
	}
	w.Endpoints = eps
	secret := strings.TrimSpace(r.env("WEBHOOK_SECRET"))
	switch {
	case len(eps) > 0 && secret == "":
		r.fail("WEBHOOK_SECRET", errors.New("is not set; WEBHOOK_URLS needs it to sign events"))
	case secret != "":
		key, err := webhook.ParseSecret(secret)
		if err != nil {
			r.fail("WEBHOOK_SECRET", err)
		}
		w.Secret = key
	}
	for _, e := range strings.Split(r.str("WEBHOOK_EVENTS"), ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if e != webhook.EventFailed && e != webhook.EventRecovered {
			r.fail("WEBHOOK_EVENTS", fmt.Errorf("%q is not connection.failed or connection.recovered", e))
		}
		w.Events = append(w.Events, e)
	}
	w.Concurrency = r.integer("WEBHOOK_CONCURRENCY", 1, 1000)
	w.Timeout = r.duration("WEBHOOK_TIMEOUT")
	w.MaxRetry = r.integer("WEBHOOK_MAX_RETRY", 0, 1000)
	return w
}
