// Package config reads the settings of the binaries from the environment
// into one plain struct per binary, fills the defaults in one place and
// checks what can be checked without the packages that use them (a
// duration, a number in range, a setting that needs another), so a bad
// setting stops start-up with one line naming it. It imports nothing of
// the packages the settings are for: internal/startup turns these structs
// into their options (the providers file into registry entries, the DSNs
// and DB_TLS_* into mysql.Options, the webhook and outbox settings into
// worker.Settings) and checks the rest there, naming the setting as
// this package does. Its one import of this module is redisconn, a leaf
// over asynq and go-redis, so that REDIS_URL is read into asynq's option
// (and a bad URL is its one line) here, like every other setting. Only
// cmd/, internal/startup and the tests of what they build use it.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/eshopbox/token-refresher/internal/redisconn"
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
	WMSDSN string // WMS_DB_DSN, as given (startup parses it)
	IEDSN  string // IE_DB_DSN, as given (startup parses it)
	Redis  asynq.RedisConnOpt
	// ProvidersFile is PROVIDERS_FILE's path ("": the default ajio entry).
	ProvidersFile string
	// AjioBaseURL is AJIO_BASE_URL ("": ajio's own), for ajio providers
	// that name none; AjioAllowInsecureHTTP is AJIO_ALLOW_INSECURE_HTTP.
	AjioBaseURL           string
	AjioAllowInsecureHTTP bool
	Location              *time.Location // DB_TIME_ZONE
	Queue                 string         // REFRESH_QUEUE
	// QueueShards is REFRESH_QUEUE_SHARDS: how many asynq queues the scan
	// tasks are spread over (task.Shard); unset, 1 on one Redis and
	// DefaultClusterQueueShards on a Redis Cluster.
	QueueShards int
	LogLevel    string // LOG_LEVEL (startup checks it)
	LogFormat   string // LOG_FORMAT
	HTTPAddr    string // HTTP_ADDR
	// PprofAddr is where the Go runtime's profiles are served (PPROF_ADDR,
	// a loopback host:port that startup checks; empty: not served).
	PprofAddr string
	// DBMaxOpenConns caps each database pool (DB_MAX_OPEN_CONNS).
	DBMaxOpenConns int
	// TaskTimeout bounds one attempt of a refresh task (REFRESH_TIMEOUT).
	TaskTimeout time.Duration
	// DBTLS are the files of the database's TLS, as given; startup reads
	// them and registers them with go-sql-driver (mysql.TLS).
	DBTLS DBTLS
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

// DBTLS are the database TLS settings as given.
type DBTLS struct {
	CAFile        string // DB_TLS_CA_FILE
	CertFile      string // DB_TLS_CERT_FILE
	KeyFile       string // DB_TLS_KEY_FILE
	AllowInsecure bool   // DB_TLS_ALLOW_INSECURE
}

// MaxQueueShards is the largest REFRESH_QUEUE_SHARDS, and
// DefaultClusterQueueShards its default on a Redis Cluster: task.MaxShards
// and task.DefaultClusterShards, which startup's tests hold them to.
const (
	MaxQueueShards            = 256
	DefaultClusterQueueShards = 16
)

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
	// OutboxKey is OUTBOX_KEY as given ("": unset): 32 bytes, as base64
	// or 64 hex characters, sealing (AES-256-GCM) the tokens kept in Redis
	// while the database refuses their write; startup parses it.
	OutboxKey string
}

// Webhooks are the failure notifications' settings (off without URLs), as
// given; startup parses the URLs and the secret and checks the events.
type Webhooks struct {
	URLs              string        // WEBHOOK_URLS, comma-separated
	AllowInsecureHTTP bool          // WEBHOOK_ALLOW_INSECURE_HTTP
	Secret            string        // WEBHOOK_SECRET: bytes as given, or whsec_ + base64
	Events            []string      // WEBHOOK_EVENTS: connection.failed, connection.recovered (default both)
	Concurrency       int           // WEBHOOK_CONCURRENCY: deliveries at once (default 4)
	Timeout           time.Duration // WEBHOOK_TIMEOUT: one POST (default 10s)
	MaxRetry          int           // WEBHOOK_MAX_RETRY: retries before a delivery is archived (default 25)
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
	c.DBTLS = DBTLS{
		AllowInsecure: r.boolean("DB_TLS_ALLOW_INSECURE"),
		CAFile:        r.str("DB_TLS_CA_FILE"), CertFile: r.str("DB_TLS_CERT_FILE"), KeyFile: r.str("DB_TLS_KEY_FILE"),
	}
	c.WMSDSN = r.dsn("WMS_DB_DSN")
	c.IEDSN = r.dsn("IE_DB_DSN")

	opt, err := redisconn.ParseURL(r.str("REDIS_URL"))
	if err != nil {
		r.fail("REDIS_URL", err)
	}
	c.Redis = opt

	c.AjioBaseURL = r.str("AJIO_BASE_URL")
	c.AjioAllowInsecureHTTP = r.boolean("AJIO_ALLOW_INSECURE_HTTP")
	c.ProvidersFile = r.str("PROVIDERS_FILE")

	c.Queue = r.str("REFRESH_QUEUE")
	c.QueueShards = 1
	if _, cluster := opt.(redisconn.ClusterOpt); cluster {
		c.QueueShards = DefaultClusterQueueShards
	}
	if v := strings.TrimSpace(r.env("REFRESH_QUEUE_SHARDS")); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			r.fail("REFRESH_QUEUE_SHARDS", fmt.Errorf("%q is not a whole number", v))
		case n < 1 || n > MaxQueueShards:
			r.fail("REFRESH_QUEUE_SHARDS", fmt.Errorf("%d is outside 1..%d", n, MaxQueueShards))
		default:
			c.QueueShards = n
		}
	}
	c.HTTPAddr = r.str("HTTP_ADDR")
	c.PprofAddr = r.str("PPROF_ADDR")
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

// dsn is a DSN setting, which must be set; startup parses it.
func (r *reader) dsn(name string) string {
	v := strings.TrimSpace(r.env(name))
	if v == "" {
		r.fail(name, errors.New("is not set (a go-sql-driver DSN such as user:password@tcp(127.0.0.1:3306)/dbname)"))
	}
	return v
}

// LoadScanner reads the scanner's settings.
func LoadScanner(get Getenv) (Scanner, error) {
	r := &reader{bin: BinScanner, get: get}
	s := Scanner{Common: r.common()}
	s.Interval = r.duration("SCAN_INTERVAL")
	s.Cooldown = r.duration("FAILURE_COOLDOWN")
	s.Concurrency = r.integer("SCAN_CONCURRENCY", 1, 1024)
	s.ChunkSize = r.integer("SCAN_CHUNK_SIZE", 1, 50000)
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
	s.OutboxKey = strings.TrimSpace(r.env("OUTBOX_KEY"))
	return s, r.err
}

func (r *reader) webhooks() Webhooks {
	var w Webhooks
	w.URLs = r.env("WEBHOOK_URLS")
	w.AllowInsecureHTTP = r.boolean("WEBHOOK_ALLOW_INSECURE_HTTP")
	w.Secret = strings.TrimSpace(r.env("WEBHOOK_SECRET"))
	for _, e := range strings.Split(r.str("WEBHOOK_EVENTS"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			w.Events = append(w.Events, e)
		}
	}
	w.Concurrency = r.integer("WEBHOOK_CONCURRENCY", 1, 1000)
	w.Timeout = r.duration("WEBHOOK_TIMEOUT")
	w.MaxRetry = r.integer("WEBHOOK_MAX_RETRY", 0, 1000)
	return w
}
