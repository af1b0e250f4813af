package startup

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/eshopbox/token-refresher/internal/breaker"
	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/httpurl"
	"github.com/eshopbox/token-refresher/internal/logging"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/registry"
	"github.com/eshopbox/token-refresher/internal/webhook"
	"github.com/eshopbox/token-refresher/internal/worker"
)

// Shared are the scanner's and the refresher's common settings as the
// packages take them.
type Shared struct {
	// Providers are PROVIDERS_FILE's entries (registry.Load), or the
	// default ajio entry (registry.Defaults) at AJIO_BASE_URL.
	Providers []registry.Entry
	// MySQL are mysql.Open's options: DB_TIME_ZONE, DB_MAX_OPEN_CONNS,
	// FINGERPRINT_KEY and the TLS of DB_TLS_* (its CA, and client pair,
	// registered with go-sql-driver as mysql.TLSConfigName while the
	// settings are read); the scanner's also SCAN_CHUNK_SIZE.
	MySQL mysql.Options
}

// Scanner is the scanner's environment (config.Scanner) and its options.
type Scanner struct {
	config.Scanner
	Shared
}

// Refresher is the refresher's environment (config.Refresher) and its
// options.
type Refresher struct {
	config.Refresher
	Shared
	// Settings are worker.New's; NewRefresher takes them.
	Settings worker.Settings
}

// LoadScanner reads the scanner's settings (config.LoadScanner) and turns
// them into the packages' options. Its error is one line naming the
// setting, a *config.SettingError.
func LoadScanner(get config.Getenv) (Scanner, error) {
	cfg, err := config.LoadScanner(get)
	s := Scanner{Scanner: cfg}
	if err != nil {
		return s, err
	}
	c := &converter{get: get}
	s.Shared = c.shared(cfg.Common)
	s.MySQL.ChunkSize = cfg.ChunkSize
	if c.err == nil {
		for _, e := range s.Providers {
			// A scan must come around at least twice inside the refresh
			// window, or a token can lapse between two scans plus a retry.
			if s.Interval > e.Before()/2 {
				c.fail("SCAN_INTERVAL", fmt.Errorf("%s is not well under refresh_before %s of %s (at most half of it)",
					s.Interval, e.Before(), e.Label()))
				break
			}
		}
	}
	return s, c.err
}

// LoadRefresher reads the refresher's settings (config.LoadRefresher) and
// turns them into the packages' options, worker.Settings among them
// (get also reads the providers' client_secret_env). Its error is one line
// naming the setting, a *config.SettingError.
func LoadRefresher(get config.Getenv) (Refresher, error) {
	cfg, err := config.LoadRefresher(get)
	r := Refresher{Refresher: cfg}
	if err != nil {
		return r, err
	}
	c := &converter{get: get}
	r.Shared = c.shared(cfg.Common)
	r.Settings = worker.Settings{
		Queue: cfg.Queue, QueueShards: cfg.QueueShards, Concurrency: cfg.Concurrency, TaskTimeout: cfg.TaskTimeout,
		RetryBaseDelay: cfg.RetryBaseDelay, RetryMaxDelay: cfg.RetryMaxDelay, RetryCheck: cfg.RetryCheck,
		DrainTimeout:   cfg.DrainTimeout,
		Breaker:        breaker.Config{Failures: cfg.BreakerFailures, Cooldown: cfg.BreakerCooldown},
		Webhooks:       c.webhooks(cfg.Webhooks),
		FingerprintKey: cfg.FingerprintKey,
		Getenv:         get,
	}
	if cfg.OutboxKey != "" {
		key, err := outbox.ParseKey(cfg.OutboxKey)
		if err != nil {
			c.fail("OUTBOX_KEY", err)
		}
		r.Settings.OutboxKey = key
	}
	return r, c.err
}

// Warnings are what start-up logs about the settings: choices that work
// but weaken a defence, each with the setting that changes it.
func (s Scanner) Warnings() []string { return warnings(s.Common, s.Shared) }

// Warnings are what start-up logs about the settings: choices that work
// but weaken a defence, each with the setting that changes it.
func (r Refresher) Warnings() []string {
	w := warnings(r.Common, r.Shared)
	if r.OutboxKey == "" {
		w = append(w, "OUTBOX_KEY is not set: a token whose write the database refuses is kept in this process's memory only, "+
			"and lost if the process is killed (SIGKILL, OOM); set it (the same in every refresher) to keep such tokens sealed in Redis")
	}
	return w
}

func warnings(c config.Common, s Shared) []string {
	var w []string
	if c.FingerprintKey == nil {
		w = append(w, "FINGERPRINT_KEY is not set: the credentials' fingerprint kept with a permanent failure is "+
			"an unkeyed SHA-256, against which anyone who reads Redis can test password guesses offline; "+
			"set it (the same in the scanner and the refresher) to make it an HMAC")
	}
	w = append(w, registry.InlineSecrets(s.Providers)...)
	if c.DBTLS.AllowInsecure {
		w = append(w, "DB_TLS_ALLOW_INSECURE=true: a DSN may connect without verifying the database server's certificate")
	}
	return w
}

// converter turns settings into options, keeping the first fault as the
// setting's error, as config's reader does.
type converter struct {
	get config.Getenv
	err error
}

func (c *converter) fail(name string, err error) {
	if c.err == nil {
		c.err = &config.SettingError{Name: name, Err: err}
	}
}

func (c *converter) shared(cc config.Common) Shared {
	var s Shared
	if _, err := logging.ParseLevel(cc.LogLevel); err != nil {
		c.fail("LOG_LEVEL", err)
	}
	t := c.dbTLS(cc.DBTLS)
	for _, d := range []struct{ name, dsn string }{{"WMS_DB_DSN", cc.WMSDSN}, {"IE_DB_DSN", cc.IEDSN}} {
		if _, err := mysql.ParseDSNWith(d.dsn, cc.Location, t); err != nil {
			c.fail(d.name, err)
		}
	}
	s.Providers = c.providers(cc)
	if cc.PprofAddr != "" {
		if err := ops.CheckProfilingAddr(cc.PprofAddr); err != nil {
			c.fail("PPROF_ADDR", err)
		}
	}
	s.MySQL = mysql.Options{Location: cc.Location, MaxOpenConns: cc.DBMaxOpenConns, TLS: t, FingerprintKey: cc.FingerprintKey}
	return s
}

// providers are AJIO_BASE_URL's and PROVIDERS_FILE's entries.
func (c *converter) providers(cc config.Common) []registry.Entry {
	if cc.AjioBaseURL != "" {
		if u, err := httpurl.Absolute(cc.AjioBaseURL); err != nil {
			c.fail("AJIO_BASE_URL", err)
		} else if err := httpurl.Secure(u, cc.AjioAllowInsecureHTTP); err != nil {
			c.fail("AJIO_BASE_URL", fmt.Errorf("%w, or set AJIO_ALLOW_INSECURE_HTTP=true", err))
		}
	}
	if cc.ProvidersFile == "" {
		return registry.Defaults(cc.AjioBaseURL)
	}
	entries, err := registry.Load(cc.ProvidersFile, cc.AjioBaseURL, c.get)
	if err != nil {
		c.fail("PROVIDERS_FILE", fmt.Errorf("%s: %w", cc.ProvidersFile, err))
	}
	return entries
}

// webhooks are the webhook settings as worker.Webhooks.
func (c *converter) webhooks(cw config.Webhooks) worker.Webhooks {
	w := worker.Webhooks{Events: cw.Events, Concurrency: cw.Concurrency, Timeout: cw.Timeout, MaxRetry: cw.MaxRetry}
	eps, err := webhook.ParseURLsWith(cw.URLs, cw.AllowInsecureHTTP)
	if errors.Is(err, httpurl.ErrInsecureHTTP) {
		err = fmt.Errorf("%w, or set WEBHOOK_ALLOW_INSECURE_HTTP=true", err)
	}
	if err != nil {
		c.fail("WEBHOOK_URLS", err)
	}
	w.Endpoints = eps
	switch {
	case len(eps) > 0 && cw.Secret == "":
		c.fail("WEBHOOK_SECRET", errors.New("is not set; WEBHOOK_URLS needs it to sign events"))
	case cw.Secret != "":
		key, err := webhook.ParseSecret(cw.Secret)
		if err != nil {
			c.fail("WEBHOOK_SECRET", err)
		}
		w.Secret = key
	}
	for _, e := range cw.Events {
		if e != webhook.EventFailed && e != webhook.EventRecovered {
			c.fail("WEBHOOK_EVENTS", fmt.Errorf("%q is not connection.failed or connection.recovered", e))
		}
	}
	return w
}

// dbTLS reads the files of DB_TLS_CA_FILE, DB_TLS_CERT_FILE and
// DB_TLS_KEY_FILE and registers them with go-sql-driver. A fault names the
// setting (and the path), never a byte of the file.
func (c *converter) dbTLS(d config.DBTLS) mysql.TLS {
	t := mysql.TLS{AllowInsecure: d.AllowInsecure}
	ca, cert, key := d.CAFile, d.CertFile, d.KeyFile
	if ca == "" {
		if cert != "" || key != "" {
			name := "DB_TLS_CERT_FILE"
			if cert == "" {
				name = "DB_TLS_KEY_FILE"
			}
			c.fail(name, errors.New("needs DB_TLS_CA_FILE (the CA that signs the database server's certificate)"))
		}
		return t
	}
	b, err := os.ReadFile(ca)
	if err != nil {
		c.fail("DB_TLS_CA_FILE", err)
		return t
	}
	roots, err := mysql.CertPool(b)
	if err != nil {
		c.fail("DB_TLS_CA_FILE", fmt.Errorf("%s %w", ca, err))
		return t
	}
	var certs []tls.Certificate
	switch {
	case cert == "" && key != "":
		c.fail("DB_TLS_CERT_FILE", errors.New("is not set; DB_TLS_KEY_FILE needs it"))
		return t
	case cert != "" && key == "":
		c.fail("DB_TLS_KEY_FILE", errors.New("is not set; DB_TLS_CERT_FILE needs it"))
		return t
	case cert != "":
		certPEM, err := os.ReadFile(cert)
		if err != nil {
			c.fail("DB_TLS_CERT_FILE", err)
			return t
		}
		keyPEM, err := os.ReadFile(key)
		if err != nil {
			c.fail("DB_TLS_KEY_FILE", err)
			return t
		}
		// crypto/tls's errors say what is wrong, never what the files hold.
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			c.fail("DB_TLS_KEY_FILE", fmt.Errorf("%s with DB_TLS_CERT_FILE %s is not a usable key pair: %w", key, cert, err))
			return t
		}
		certs = []tls.Certificate{pair}
	}
	if err := mysql.RegisterTLS(roots, certs); err != nil {
		c.fail("DB_TLS_CA_FILE", err)
		return t
	}
	t.Registered = true
	return t
}
