package config

import (
	"flag"
	"fmt"
	"io"
)

// Binary is a program that reads settings from the environment.
type Binary string

// The binaries configured by this package.
const (
	BinScanner   Binary = "scanner"
	BinRefresher Binary = "refresher"
	BinDashboard Binary = "dashboard"
)

// Setting is one environment variable a binary reads. Settings is the one
// list of them: the loaders take every default from it (and refuse, by
// panicking, to read a name it lacks), --help prints it, and a test keeps
// docs/settings.md equal to it, so the three cannot drift apart.
type Setting struct {
	Name string
	// Bins are the binaries that read it. A name may appear twice, for
	// disjoint binaries, when its default or meaning differs between them.
	Bins []Binary
	// Default is the value used when the variable is unset or empty, as the
	// loader parses it ("" = no value).
	Default string
	// Unset says what an empty Default means ("(required)", "(off)"), or
	// where a default lives that is not a value of this variable.
	Unset string
	// Meaning is one line.
	Meaning string
}

var (
	both          = []Binary{BinScanner, BinRefresher}
	onlyScanner   = []Binary{BinScanner}
	onlyRefresher = []Binary{BinRefresher}
	onlyDashboard = []Binary{BinDashboard}
)

// Settings are every environment variable the scanner, the refresher and
// the dashboard read, in the order --help lists them. The defaults that are
// another package's constants (the queue's name, ajio's URL, the webhook
// events) are written out, as this package imports none of them;
// startup's tests hold them to those constants.
var Settings = []Setting{
	{Name: "WMS_DB_DSN", Bins: both, Unset: "(required)", Meaning: "go-sql-driver DSN of database A (channels)"},
	{Name: "IE_DB_DSN", Bins: both, Unset: "(required)", Meaning: "go-sql-driver DSN of database B (ie_appinstall_connection); rejectReadOnly=true and clientFoundRows=true are added"},
	{Name: "REDIS_URL", Bins: []Binary{BinScanner, BinRefresher, BinDashboard}, Default: "redis://127.0.0.1:6379/0", Meaning: "asynq's Redis: redis://, rediss://, redis-sentinel://, rediss-sentinel://, redis-cluster:// or rediss-cluster://"},
	{Name: "PROVIDERS_FILE", Bins: both, Unset: "(none: type 16 is ajio)", Meaning: "YAML file of providers, one entry per integration type (docs/settings.md#providers-file)"},
	{Name: "AJIO_BASE_URL", Bins: both, Unset: "(https://api-seller.services.ajio.com)", Meaning: "base URL of ajio providers that name none"},
	{Name: "AJIO_ALLOW_INSECURE_HTTP", Bins: both, Default: "false", Meaning: "accept an http:// AJIO_BASE_URL to a host that is not loopback"},
	{Name: "DB_TIME_ZONE", Bins: both, Default: "UTC", Meaning: "zone the DATETIME columns are stored in"},
	{Name: "DB_TLS_CA_FILE", Bins: both, Unset: "(off)", Meaning: "PEM CA bundle that signs the database servers' certificates; DSNs then use verified TLS"},
	{Name: "DB_TLS_CERT_FILE", Bins: both, Unset: "(none)", Meaning: "PEM client certificate for the database (with DB_TLS_KEY_FILE and DB_TLS_CA_FILE)"},
	{Name: "DB_TLS_KEY_FILE", Bins: both, Unset: "(none)", Meaning: "key of DB_TLS_CERT_FILE"},
	{Name: "DB_TLS_ALLOW_INSECURE", Bins: both, Default: "false", Meaning: "accept tls=preferred, tls=skip-verify and allowFallbackToPlaintext=true in a DSN"},
	{Name: "DB_MAX_OPEN_CONNS", Bins: both, Default: "32", Meaning: "connection pool size per database"},
	{Name: "REFRESH_QUEUE", Bins: both, Default: "token_refresh", Meaning: "asynq queue name (on-demand refreshes use <name>_urgent)"},
	{Name: "REFRESH_QUEUE_SHARDS", Bins: both, Unset: fmt.Sprintf("(1 on one Redis, %d on a Redis Cluster)", DefaultClusterQueueShards), Meaning: "how many asynq queues the scan tasks are spread over (<name>, <name>.1, …), by connection id; the same in every scanner and refresher"},
	{Name: "REFRESH_TIMEOUT", Bins: both, Default: "2m", Meaning: "deadline of one refresh attempt"},
	{Name: "HTTP_ADDR", Bins: both, Unset: "(off)", Meaning: "where /metrics, /healthz, /readyz are served (refresher: also the API and dashboard)"},
	{Name: "HTTP_ADDR", Bins: onlyDashboard, Default: ":8080", Meaning: "where asynqmon, /healthz and /readyz are served"},
	{Name: "PPROF_ADDR", Bins: both, Unset: "(off)", Meaning: "a loopback host:port serving Go's profiles (/debug/pprof/)"},
	{Name: "FINGERPRINT_KEY", Bins: both, Unset: "(unset: unkeyed)", Meaning: "HMAC key (32+ characters) of the credentials' fingerprint; the same in scanner and refresher"},
	{Name: "LOG_LEVEL", Bins: []Binary{BinScanner, BinRefresher, BinDashboard}, Default: "info", Meaning: "debug, info, warn or error"},
	{Name: "LOG_FORMAT", Bins: []Binary{BinScanner, BinRefresher, BinDashboard}, Default: "json", Meaning: "json or console"},

	{Name: "FULL_SCAN_INTERVAL", Bins: both, Default: "10m", Meaning: "time between full passes over the fleet (scans and census); the passes between them read only due rows when the optional indexes exist"},
	{Name: "SCAN_INTERVAL", Bins: onlyScanner, Default: "1m", Meaning: "time between scans; at most half of every provider's refresh_before"},
	{Name: "FAILURE_COOLDOWN", Bins: onlyScanner, Default: "1h", Meaning: "wait before a permanently failed connection is tried again with unchanged credentials"},
	{Name: "SCAN_CONCURRENCY", Bins: onlyScanner, Default: "16", Meaning: "enqueues in flight"},
	{Name: "SCAN_CHUNK_SIZE", Bins: onlyScanner, Default: "1000", Meaning: "connection ids per query"},

	{Name: "REFRESH_CONCURRENCY", Bins: onlyRefresher, Default: "50", Meaning: "worker goroutines per process"},
	{Name: "RETRY_MAX_DELAY", Bins: onlyRefresher, Default: "1m", Meaning: "cap of the transient-failure backoff"},
	{Name: "RETRY_BASE_DELAY", Bins: onlyRefresher, Default: "1s", Meaning: "the first retry comes within it; retry n within base*2^n (full jitter)"},
	{Name: "RETRY_CHECK_INTERVAL", Bins: onlyRefresher, Default: "1s", Meaning: "how often retries whose delay is over are moved back to the queue"},
	{Name: "BREAKER_FAILURES", Bins: onlyRefresher, Default: "5", Meaning: "consecutive transient failures of a marketplace that open its circuit breaker"},
	{Name: "BREAKER_COOLDOWN", Bins: onlyRefresher, Default: "30s", Meaning: "how long an open breaker makes no calls before one probe"},
	{Name: "CENSUS_INTERVAL", Bins: onlyRefresher, Default: "1m", Meaning: "how often the census lease holder counts connections for the gauges"},
	{Name: "DRAIN_TIMEOUT", Bins: onlyRefresher, Default: "25s", Meaning: "how long SIGTERM waits for in-flight refreshes and kept tokens"},
	{Name: "FAILURE_COOLDOWN", Bins: onlyRefresher, Default: "1h", Meaning: "the scanner's setting, read by the API to tell when a failing connection is retried"},
	{Name: "OUTBOX_KEY", Bins: onlyRefresher, Unset: "(unset: memory only)", Meaning: "AES-256 key (base64 or hex) sealing tokens kept in Redis while the database refuses writes"},
	{Name: "API_TOKEN", Bins: onlyRefresher, Unset: "(off)", Meaning: "bearer token (16+ characters) of the /v1/ API; the API is off without it"},
	{Name: "WEBHOOK_URLS", Bins: onlyRefresher, Unset: "(off)", Meaning: "comma-separated http(s) URLs that receive failure notifications"},
	{Name: "WEBHOOK_ALLOW_INSECURE_HTTP", Bins: onlyRefresher, Default: "false", Meaning: "accept http:// webhook URLs to hosts that are not loopback"},
	{Name: "WEBHOOK_SECRET", Bins: onlyRefresher, Unset: "(required with WEBHOOK_URLS)", Meaning: "signing key: whsec_<base64> or the bytes as given, 16 bytes or more"},
	{Name: "WEBHOOK_EVENTS", Bins: onlyRefresher, Default: "connection.failed,connection.recovered", Meaning: "the events sent"},
	{Name: "WEBHOOK_CONCURRENCY", Bins: onlyRefresher, Default: "4", Meaning: "deliveries at once, on workers of their own"},
	{Name: "WEBHOOK_TIMEOUT", Bins: onlyRefresher, Default: "10s", Meaning: "deadline of one delivery POST"},
	{Name: "WEBHOOK_MAX_RETRY", Bins: onlyRefresher, Default: "25", Meaning: "retries of one delivery before it is archived"},
	{Name: "DASHBOARD_USER", Bins: onlyRefresher, Unset: "(off)", Meaning: "basic-auth user of asynqmon at /monitoring; off without it"},
	{Name: "DASHBOARD_PASSWORD", Bins: onlyRefresher, Unset: "(off)", Meaning: "its password, 12 characters or more"},
	{Name: "DASHBOARD_USER", Bins: onlyDashboard, Unset: "(required)", Meaning: "basic-auth user of asynqmon"},
	{Name: "DASHBOARD_PASSWORD", Bins: onlyDashboard, Unset: "(required)", Meaning: "its password, 12 characters or more"},
	{Name: "DASHBOARD_READ_ONLY", Bins: []Binary{BinRefresher, BinDashboard}, Default: "false", Meaning: "the dashboard shows tasks but cannot run, delete or archive them"},
}

// SettingsOf are the settings bin reads, in Settings' order.
func SettingsOf(bin Binary) []Setting {
	var out []Setting
	for _, s := range Settings {
		if s.reads(bin) {
			out = append(out, s)
		}
	}
	return out
}

func (s Setting) reads(bin Binary) bool {
	for _, b := range s.Bins {
		if b == bin {
			return true
		}
	}
	return false
}

// lookup is bin's entry for name.
func lookup(bin Binary, name string) (Setting, bool) {
	for _, s := range Settings {
		if s.Name == name && s.reads(bin) {
			return s, true
		}
	}
	return Setting{}, false
}

// Shown is the default as --help and docs/settings.md give it.
func (s Setting) Shown() string {
	if s.Default != "" {
		return s.Default
	}
	return s.Unset
}

// PrintSettings writes bin's settings for --help: each name and its
// default on a line, the meaning indented under it.
func PrintSettings(w io.Writer, bin Binary) {
	list := SettingsOf(bin)
	width := 0
	for _, s := range list {
		width = max(width, len(s.Name))
	}
	for _, s := range list {
		fmt.Fprintf(w, "  %-*s  %s\n      %s\n", width, s.Name, s.Shown(), s.Meaning)
	}
}

// PrintHelp writes a binary's --help: what it is, its usage line, its flags
// (fs may be nil: none) and every setting it reads.
func PrintHelp(w io.Writer, bin Binary, about, usage string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nusage: %s\n", about, usage)
	if fs != nil {
		fmt.Fprintln(w, "\nflags (one-shot runs only):")
		out := fs.Output()
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(out)
	}
	fmt.Fprintf(w, "\nenvironment (every setting the %s reads, with its default; docs/settings.md says more):\n", bin)
	PrintSettings(w, bin)
}
