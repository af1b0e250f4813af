package startup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/outbox"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

func env(kv map[string]string) config.Getenv {
	base := map[string]string{
		"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms",
		"IE_DB_DSN":  "root@tcp(127.0.0.1:3306)/ie",
	}
	for k, v := range kv {
		base[k] = v
	}
	return func(k string) string { return base[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	s, err := startup.LoadScanner(env(nil))
	require.NoError(t, err)
	assert.Equal(t, time.Minute, s.Interval)
	assert.Equal(t, time.Hour, s.Cooldown)
	require.Len(t, s.Providers, 1)
	assert.Equal(t, "16", s.Providers[0].IntegrationType)
	assert.Equal(t, "https://api-seller.services.ajio.com", s.Providers[0].BaseURL)
	assert.Equal(t, 10*time.Minute, s.Providers[0].Before())
	assert.Equal(t, "token_refresh", s.Queue)
	assert.Empty(t, s.PprofAddr, "profiles are not served unless asked for")

	r, err := startup.LoadRefresher(env(map[string]string{"AJIO_BASE_URL": "http://127.0.0.1:8089"}))
	require.NoError(t, err)
	assert.Equal(t, 50, r.Concurrency)
	assert.Equal(t, time.Minute, r.RetryMaxDelay)
	assert.Equal(t, "http://127.0.0.1:8089", r.Providers[0].BaseURL)
}

// TestInvalidSettingNamesIt: every bad setting stops start-up with one line
// that names it and repeats no secret.
func TestInvalidSettingNamesIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	badProviders := filepath.Join(dir, "providers.yaml")
	require.NoError(t, os.WriteFile(badProviders, []byte("providers:\n  - integration_type: \"16\"\n    kind: carrier-pigeon\n"), 0o600))
	tests := []struct {
		name    string
		kv      map[string]string
		setting string
		want    string
	}{
		{"missing WMS DSN", map[string]string{"WMS_DB_DSN": ""}, "WMS_DB_DSN", "is not set"},
		{"unparsable DSN", map[string]string{"IE_DB_DSN": "root:hunter2@tcp(127.0.0.1:3306"}, "IE_DB_DSN", "not a valid go-sql-driver DSN"},
		{"bad redis scheme", map[string]string{"REDIS_URL": "http://:hunter2@127.0.0.1:6379"}, "REDIS_URL", "is not redis"},
		{"bad redis url", map[string]string{"REDIS_URL": "redis://:hunter2@[::1"}, "REDIS_URL", "not a valid URL"},
		{"bad interval", map[string]string{"SCAN_INTERVAL": "soon"}, "SCAN_INTERVAL", "is not a duration"},
		{"negative interval", map[string]string{"SCAN_INTERVAL": "-1m"}, "SCAN_INTERVAL", "must be positive"},
		{"interval not under refresh_before", map[string]string{"SCAN_INTERVAL": "6m"}, "SCAN_INTERVAL", "not well under refresh_before 10m0s"},
		{"bad cooldown", map[string]string{"FAILURE_COOLDOWN": "1 hour"}, "FAILURE_COOLDOWN", "is not a duration"},
		{"bad log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL", "unknown log level"},
		{"bad log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT", "not json or console"},
		{"bad zone", map[string]string{"DB_TIME_ZONE": "Mars/Olympus"}, "DB_TIME_ZONE", "not a known time zone"},
		{"bad ajio url", map[string]string{"AJIO_BASE_URL": "ajio.com"}, "AJIO_BASE_URL", "not an absolute http(s) URL"},
		{"missing providers file", map[string]string{"PROVIDERS_FILE": filepath.Join(dir, "nope.yaml")}, "PROVIDERS_FILE", "no such file"},
		{"bad providers file", map[string]string{"PROVIDERS_FILE": badProviders}, "PROVIDERS_FILE", `unknown kind "carrier-pigeon"`},
		{"bad chunk size", map[string]string{"SCAN_CHUNK_SIZE": "0"}, "SCAN_CHUNK_SIZE", "outside"},
		{"profiles reachable from other machines", map[string]string{"PPROF_ADDR": ":6060"}, "PPROF_ADDR", "not a loopback address"},
		{"profiles on a public address", map[string]string{"PPROF_ADDR": "10.0.0.7:6060"}, "PPROF_ADDR", "not a loopback address"},
		{"profiles address without a port", map[string]string{"PPROF_ADDR": "127.0.0.1"}, "PPROF_ADDR", "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := startup.LoadScanner(env(tt.kv))
			require.Error(t, err)
			var se *config.SettingError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.Equal(t, tt.setting, se.Name)
			assert.True(t, strings.HasPrefix(err.Error(), "invalid setting "+tt.setting+": "), err.Error())
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
}

func TestRefresherSettings(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		kv      map[string]string
		setting string
	}{
		"concurrency zero":         {map[string]string{"REFRESH_CONCURRENCY": "0"}, "REFRESH_CONCURRENCY"},
		"bad drain":                {map[string]string{"DRAIN_TIMEOUT": "x"}, "DRAIN_TIMEOUT"},
		"bad retry cap":            {map[string]string{"RETRY_MAX_DELAY": "0s"}, "RETRY_MAX_DELAY"},
		"user without password":    {map[string]string{"DASHBOARD_USER": "ops"}, "DASHBOARD_PASSWORD"},
		"short dashboard password": {map[string]string{"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "elevenchars"}, "DASHBOARD_PASSWORD"},
		"short api token":          {map[string]string{"API_TOKEN": "short"}, "API_TOKEN"},
		"bad dashboard read only":  {map[string]string{"DASHBOARD_READ_ONLY": "maybe"}, "DASHBOARD_READ_ONLY"},
	} {
		_, err := startup.LoadRefresher(env(tt.kv))
		var se *config.SettingError
		require.True(t, errors.As(err, &se), "%s: %v", name, err)
		assert.Equal(t, tt.setting, se.Name, name)
	}
}

func TestWebhookSettings(t *testing.T) {
	t.Parallel()
	r, err := startup.LoadRefresher(env(nil))
	require.NoError(t, err)
	assert.Empty(t, r.Settings.Webhooks.Endpoints, "off by default")

	r, err = startup.LoadRefresher(env(map[string]string{
		"WEBHOOK_URLS":   "https://hooks.example.com/a?token=url-secret , http://127.0.0.1:9000/b",
		"WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"WEBHOOK_EVENTS": "connection.failed",
	}))
	require.NoError(t, err)
	require.Len(t, r.Settings.Webhooks.Endpoints, 2)
	assert.Equal(t, "http://127.0.0.1:9000/b", r.Settings.Webhooks.Endpoints[1].URL)
	assert.Len(t, r.Settings.Webhooks.Secret, 24, "whsec_ is base64 of the key")
	assert.Equal(t, []string{"connection.failed"}, r.Settings.Webhooks.Events)
	assert.Equal(t, 4, r.Settings.Webhooks.Concurrency)
	assert.Equal(t, 25, r.Settings.Webhooks.MaxRetry)
	assert.Equal(t, 10*time.Second, r.Settings.Webhooks.Timeout)

	for _, tc := range []struct {
		kv      map[string]string
		setting string
	}{
		{map[string]string{"WEBHOOK_URLS": "https://hooks.example.com/a"}, "WEBHOOK_SECRET"},
		{map[string]string{"WEBHOOK_URLS": "https://h/a", "WEBHOOK_SECRET": "short-secret"}, "WEBHOOK_SECRET"},
		{map[string]string{"WEBHOOK_URLS": "https://h/a", "WEBHOOK_SECRET": "whsec_!!!"}, "WEBHOOK_SECRET"},
		{map[string]string{"WEBHOOK_URLS": "hooks.example.com/a?token=url-secret"}, "WEBHOOK_URLS"},
		{map[string]string{"WEBHOOK_URLS": "https://u:url-secret@h/a"}, "WEBHOOK_URLS"},
		{map[string]string{"WEBHOOK_EVENTS": "connection.deleted"}, "WEBHOOK_EVENTS"},
	} {
		_, err := startup.LoadRefresher(env(tc.kv))
		var se *config.SettingError
		require.ErrorAs(t, err, &se, "%v", tc.kv)
		assert.Equal(t, tc.setting, se.Name, "%v", tc.kv)
		assert.NotContains(t, err.Error(), "url-secret")
		assert.NotContains(t, err.Error(), "short-secret")
		assert.NotContains(t, err.Error(), "\n")
	}
}

func TestOutboxKey(t *testing.T) {
	t.Parallel()
	r, err := startup.LoadRefresher(env(nil))
	require.NoError(t, err)
	assert.Nil(t, r.Settings.OutboxKey, "unset: tokens in hand are kept in memory only")
	assert.True(t, slices.ContainsFunc(r.Warnings(), func(w string) bool { return strings.HasPrefix(w, "OUTBOX_KEY is not set") }),
		"start-up warns, naming the setting: %q", r.Warnings())

	key := outbox.GenerateKey()
	r, err = startup.LoadRefresher(env(map[string]string{"OUTBOX_KEY": key}))
	require.NoError(t, err)
	assert.Len(t, r.Settings.OutboxKey, 32)
	for _, w := range r.Warnings() {
		assert.NotContains(t, w, "OUTBOX_KEY", "set: no warning")
	}

	for _, bad := range []string{"c2hvcnQta2V5LXNlY3JldA==", "not base64 or hex: sekrit-value"} {
		_, err := startup.LoadRefresher(env(map[string]string{"OUTBOX_KEY": bad}))
		var se *config.SettingError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, "OUTBOX_KEY", se.Name)
		assert.NotContains(t, err.Error(), bad, "the key is never repeated")
		assert.NotContains(t, err.Error(), "sekrit")
		assert.NotContains(t, err.Error(), "\n")
	}
}

// TestDBTLSSettings: the database TLS settings are read at start-up, and a
// fault names its setting in one line without a byte of the file. Not
// parallel: a good CA is registered with go-sql-driver, process-wide.
func TestDBTLSSettings(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hunter2 is not a certificate"), 0o600))
	ca := testenv.NewTestCA(t, "config")
	cert, key := ca.Issue(t, "client", "token-refresher")
	for _, tt := range []struct {
		name    string
		kv      map[string]string
		setting string
		want    string
	}{
		{"missing CA file", map[string]string{"DB_TLS_CA_FILE": filepath.Join(dir, "nope.pem")}, "DB_TLS_CA_FILE", "no such file"},
		{"CA file without a certificate", map[string]string{"DB_TLS_CA_FILE": notPEM}, "DB_TLS_CA_FILE", "holds no PEM certificate"},
		{"client certificate without a CA", map[string]string{"DB_TLS_CERT_FILE": cert, "DB_TLS_KEY_FILE": key}, "DB_TLS_CERT_FILE", "needs DB_TLS_CA_FILE"},
		{"certificate without its key", map[string]string{"DB_TLS_CA_FILE": ca.CAFile, "DB_TLS_CERT_FILE": cert}, "DB_TLS_KEY_FILE", "is not set"},
		{"key without its certificate", map[string]string{"DB_TLS_CA_FILE": ca.CAFile, "DB_TLS_KEY_FILE": key}, "DB_TLS_CERT_FILE", "is not set"},
		{"key that is no key", map[string]string{"DB_TLS_CA_FILE": ca.CAFile, "DB_TLS_CERT_FILE": cert, "DB_TLS_KEY_FILE": notPEM}, "DB_TLS_KEY_FILE", "not a usable key pair"},
		{"skip-verify", map[string]string{"WMS_DB_DSN": "root:hunter2@tcp(127.0.0.1:3306)/wms?tls=skip-verify"}, "WMS_DB_DSN", "set DB_TLS_ALLOW_INSECURE=true"},
		{"preferred", map[string]string{"IE_DB_DSN": "root:hunter2@tcp(127.0.0.1:3306)/ie?tls=preferred"}, "IE_DB_DSN", "sellers' passwords and tokens"},
		{"custom without a CA", map[string]string{"IE_DB_DSN": "root:hunter2@tcp(127.0.0.1:3306)/ie?tls=custom"}, "IE_DB_DSN", "needs DB_TLS_CA_FILE"},
		{"allow insecure not a bool", map[string]string{"DB_TLS_ALLOW_INSECURE": "yes please"}, "DB_TLS_ALLOW_INSECURE", "not true or false"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := startup.LoadScanner(env(tt.kv))
			require.Error(t, err)
			var se *config.SettingError
			require.True(t, errors.As(err, &se), "%v", err)
			assert.Equal(t, tt.setting, se.Name, err.Error())
			assert.Contains(t, err.Error(), tt.want)
			assert.NotContains(t, err.Error(), "hunter2")
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}

	s, err := startup.LoadRefresher(env(map[string]string{
		"WMS_DB_DSN": "root@tcp(127.0.0.1:3306)/wms?tls=skip-verify", "DB_TLS_ALLOW_INSECURE": "true",
	}))
	require.NoError(t, err, "allowed explicitly")
	assert.True(t, s.MySQL.TLS.AllowInsecure)
	assert.False(t, s.MySQL.TLS.Registered)

	s, err = startup.LoadRefresher(env(map[string]string{"DB_TLS_CA_FILE": ca.CAFile, "DB_TLS_CERT_FILE": cert, "DB_TLS_KEY_FILE": key}))
	require.NoError(t, err)
	assert.True(t, s.MySQL.TLS.Registered)
	assert.False(t, s.MySQL.TLS.AllowInsecure)
}

// TestFingerprintKey: FINGERPRINT_KEY is optional, at least 32 characters,
// read by both binaries, and its absence is a start-up warning.
func TestFingerprintKey(t *testing.T) {
	t.Parallel()
	s, err := startup.LoadScanner(env(nil))
	require.NoError(t, err)
	assert.Nil(t, s.FingerprintKey)
	require.NotEmpty(t, s.Warnings())
	assert.Contains(t, s.Warnings()[0], "FINGERPRINT_KEY is not set")

	key := "fingerprint-key-0123456789abcdef-hunter2"
	s, err = startup.LoadScanner(env(map[string]string{"FINGERPRINT_KEY": key}))
	require.NoError(t, err)
	assert.Equal(t, []byte(key), s.FingerprintKey)
	assert.Empty(t, s.Warnings())
	r, err := startup.LoadRefresher(env(map[string]string{"FINGERPRINT_KEY": key}))
	require.NoError(t, err)
	assert.Equal(t, []byte(key), r.FingerprintKey)

	_, err = startup.LoadRefresher(env(map[string]string{"FINGERPRINT_KEY": "hunter2"}))
	require.Error(t, err)
	assert.Equal(t, "invalid setting FINGERPRINT_KEY: shorter than 32 characters (openssl rand -base64 32 makes one)", err.Error())
}

// TestInsecureHTTP: http:// to a host that is not loopback is refused for
// AJIO_BASE_URL and WEBHOOK_URLS unless their setting allows it.
func TestInsecureHTTP(t *testing.T) {
	t.Parallel()
	_, err := startup.LoadScanner(env(map[string]string{"AJIO_BASE_URL": "http://sandbox:8089"}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid setting AJIO_BASE_URL: is http:// to a host that is not loopback")
	assert.Contains(t, err.Error(), "set AJIO_ALLOW_INSECURE_HTTP=true")
	s, err := startup.LoadScanner(env(map[string]string{"AJIO_BASE_URL": "http://sandbox:8089", "AJIO_ALLOW_INSECURE_HTTP": "true"}))
	require.NoError(t, err)
	assert.Equal(t, "http://sandbox:8089", s.Providers[0].BaseURL)
	_, err = startup.LoadScanner(env(map[string]string{"AJIO_BASE_URL": "http://127.0.0.1:8089"}))
	require.NoError(t, err, "loopback")

	hooks := map[string]string{"WEBHOOK_URLS": "https://a.example/h,http://hooks.example.com/h?token=hunter2", "WEBHOOK_SECRET": "0123456789abcdef0123"}
	_, err = startup.LoadRefresher(env(hooks))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid setting WEBHOOK_URLS: entry 2 is http:// to a host that is not loopback")
	assert.Contains(t, err.Error(), "set WEBHOOK_ALLOW_INSECURE_HTTP=true")
	assert.NotContains(t, err.Error(), "hunter2")
	hooks["WEBHOOK_ALLOW_INSECURE_HTTP"] = "true"
	r, err := startup.LoadRefresher(env(hooks))
	require.NoError(t, err)
	assert.Len(t, r.Settings.Webhooks.Endpoints, 2)
}

// TestInlineSecretWarnings: start-up warns about secret-looking static
// headers of the providers file, and refuses an inline client_secret.
func TestInlineSecretWarnings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "providers.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
providers:
  - integration_type: "61"
    kind: http_token
    base_url: https://shop.example.com
    request:
      method: POST
      path: /login
      body: json
      fields: {user: {input: username}, pass: {input: password}}
      headers: {Authorization: "Bearer hunter2"}
    response: {access_token: token, expiry: {expires_in: expires_in}}
`), 0o600))
	s, err := startup.LoadScanner(env(map[string]string{"PROVIDERS_FILE": file, "FINGERPRINT_KEY": "0123456789abcdef0123456789abcdef"}))
	require.NoError(t, err)
	require.Len(t, s.Warnings(), 1)
	assert.Contains(t, s.Warnings()[0], "request.headers.Authorization")
	assert.NotContains(t, s.Warnings()[0], "hunter2")

	require.NoError(t, os.WriteFile(file, []byte(`
providers:
  - {integration_type: "42", kind: oauth2_refresh, token_url: "https://a.example/t", client_id: c, client_secret: hunter2}
`), 0o600))
	_, err = startup.LoadScanner(env(map[string]string{"PROVIDERS_FILE": file}))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid setting PROVIDERS_FILE")
	assert.Contains(t, err.Error(), "client_secret_env")
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestDashboardPasswordLength: DASHBOARD_PASSWORD needs 12 characters, for
// the embedded dashboard and the standalone one, and the start-up error is
// one line naming the setting, never the password.
func TestDashboardPasswordLength(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"elevenchars", "pässwörd-12"} {
		kv := map[string]string{"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": pw}
		_, err := startup.LoadRefresher(env(kv))
		require.Error(t, err, pw)
		assert.Equal(t, "invalid setting DASHBOARD_PASSWORD: shorter than 12 characters", err.Error())
		_, err = config.LoadDashboard(env(kv))
		require.Error(t, err, pw)
		assert.Equal(t, "invalid setting DASHBOARD_PASSWORD: shorter than 12 characters", err.Error())
	}
	kv := map[string]string{"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "twelve-chars"}
	_, err := startup.LoadRefresher(env(kv))
	assert.NoError(t, err)
	_, err = config.LoadDashboard(env(kv))
	assert.NoError(t, err)
}

// TestOpenStoreNamesTheSetting: mysql.Open names the database that failed;
// start-up names its setting, never the password.
func TestOpenStoreNamesTheSetting(t *testing.T) {
	t.Parallel()
	good, err := testenv.DatabaseDSN(testenv.MySQLDSN(), "mysql")
	require.NoError(t, err)
	_, err = startup.OpenStore(context.Background(), good, "root:hunter2@tcp(127.0.0.1:1)/b", mysql.Options{QueryTimeout: 2 * time.Second})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "IE_DB_DSN: cannot reach the database"), err.Error())
	assert.NotContains(t, err.Error(), "hunter2")
	_, err = startup.OpenStore(context.Background(), "not a dsn", good, mysql.Options{})
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "WMS_DB_DSN: "), err.Error())
}
