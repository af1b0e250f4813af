package mysql_test

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/mysql"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestParseDSNTLS: the settings that skip verification are refused unless
// allowed, a registered CA is used by a DSN that asks for no particular TLS,
// and ParseDSN's other guarantees hold either way. Not parallel: it
// registers a TLS config, which is process-wide.
func TestParseDSNTLS(t *testing.T) {
	for _, p := range []string{"tls=skip-verify", "tls=preferred", "tls=SKIP-VERIFY", "allowFallbackToPlaintext=true"} {
		_, err := mysql.ParseDSN("root:hunter2@tcp(127.0.0.1:3306)/db?"+p, nil)
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), "DB_TLS_ALLOW_INSECURE=true", p)
		assert.Contains(t, err.Error(), "sellers' passwords and tokens", p)
		assert.NotContains(t, err.Error(), "hunter2")
		assert.NotContains(t, err.Error(), "\n")

		dsn, err := mysql.ParseDSNWith("root:hunter2@tcp(127.0.0.1:3306)/db?"+p, nil, mysql.TLS{AllowInsecure: true})
		require.NoError(t, err, p)
		assert.Contains(t, dsn, "rejectReadOnly=true")
		assert.Contains(t, dsn, "clientFoundRows=true")
	}
	for _, p := range []string{"tls=custom", "tls=token-refresher"} {
		_, err := mysql.ParseDSN("root@tcp(127.0.0.1:3306)/db?"+p, nil)
		require.Error(t, err, p)
		assert.Contains(t, err.Error(), "needs DB_TLS_CA_FILE", p)
	}
	// tls=true verifies against the system's CAs: accepted as it is.
	dsn, err := mysql.ParseDSN("root@tcp(127.0.0.1:3306)/db?tls=true", nil)
	require.NoError(t, err)
	assert.Contains(t, dsn, "tls=true")

	ca := testenv.NewTestCA(t, "parse")
	roots, err := mysql.CertPool([]byte(readFile(t, ca.CAFile)))
	require.NoError(t, err)
	require.NoError(t, mysql.RegisterTLS(roots, nil))
	reg := mysql.TLS{Registered: true}
	for dsnIn, want := range map[string]string{
		"root@tcp(127.0.0.1:3306)/db":                                "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=true":                       "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=1":                          "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=custom":                     "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=token-refresher":            "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?charset=utf8mb4&tls=true&x=1":   "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=false":                      "tls=false",
		"root:p/a?ss@tcp(127.0.0.1:3306)/db?rejectReadOnly=false":    "tls=" + mysql.TLSConfigName,
		"root@tcp(127.0.0.1:3306)/db?tls=skip-verify&loc=UTC&x=true": "refused",
	} {
		dsn, err := mysql.ParseDSNWith(dsnIn, nil, reg)
		if want == "refused" {
			require.Error(t, err, dsnIn)
			continue
		}
		require.NoError(t, err, dsnIn)
		assert.Contains(t, dsn, want, dsnIn)
		assert.Contains(t, dsn, "clientFoundRows=true", dsnIn)
		assert.Equal(t, !strings.Contains(dsnIn, "rejectReadOnly=false"), strings.Contains(dsn, "rejectReadOnly=true"), dsnIn)
	}
}

// TestTLSToMariaDB: a private MariaDB with a certificate of a test CA.
// DB_TLS_CA_FILE with that CA connects, over TLS (Ssl_cipher), and with a
// client certificate (DB_TLS_CERT_FILE, DB_TLS_KEY_FILE) a user that
// requires one; a wrong CA stops start-up with one line naming the setting.
// Not parallel: each start-up registers its TLS config process-wide.
func TestTLSToMariaDB(t *testing.T) {
	ca := testenv.NewTestCA(t, "good")
	cert, key := ca.Issue(t, "server", "127.0.0.1", "localhost")
	clientCert, clientKey := ca.Issue(t, "client", "token-refresher")
	m := testenv.StartMariaDB(t, testenv.MariaDBOptions{TLS: &testenv.MariaDBTLS{CA: ca.CAFile, Cert: cert, Key: key}})
	wms, ie := m.CreateSchema(t)
	ctx := context.Background()
	_, err := m.Root().ExecContext(ctx, "CREATE USER 'certified'@'%' IDENTIFIED BY 'cert-password' REQUIRE X509")
	require.NoError(t, err)
	_, err = m.Root().ExecContext(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON *.* TO 'certified'@'%'")
	require.NoError(t, err)

	start := func(kv map[string]string) (startup.Scanner, *mysql.Store, error) {
		t.Helper()
		cfg, err := startup.LoadScanner(func(k string) string { return kv[k] })
		require.NoError(t, err)
		s, err := startup.OpenStore(ctx, cfg.WMSDSN, cfg.IEDSN, mysql.Options{QueryTimeout: 10 * time.Second, TLS: cfg.MySQL.TLS})
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return cfg, s, err
	}
	cipher := func(cfg startup.Scanner) string {
		t.Helper()
		dsn, err := mysql.ParseDSNWith(cfg.IEDSN, nil, cfg.MySQL.TLS)
		require.NoError(t, err)
		db, err := sql.Open("mysql", dsn)
		require.NoError(t, err)
		defer db.Close()
		var name, value string
		require.NoError(t, db.QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&name, &value))
		return value
	}

	// Without TLS settings the session is plaintext: what Ssl_cipher shows
	// below is TLS's doing.
	plain, _, err := start(map[string]string{"WMS_DB_DSN": m.AppDSN(wms), "IE_DB_DSN": m.AppDSN(ie)})
	require.NoError(t, err)
	assert.Empty(t, cipher(plain))

	good, _, err := start(map[string]string{"WMS_DB_DSN": m.AppDSN(wms), "IE_DB_DSN": m.AppDSN(ie), "DB_TLS_CA_FILE": ca.CAFile})
	require.NoError(t, err)
	assert.True(t, good.MySQL.TLS.Registered)
	assert.NotEmpty(t, cipher(good), "the session is encrypted")

	certified := strings.Replace(m.AppDSN(ie), "app:app-password@", "certified:cert-password@", 1)
	require.Contains(t, certified, "certified:")
	_, _, err = start(map[string]string{"WMS_DB_DSN": certified, "IE_DB_DSN": certified, "DB_TLS_CA_FILE": ca.CAFile})
	require.Error(t, err, "REQUIRE X509 without a client certificate")
	withCert, _, err := start(map[string]string{"WMS_DB_DSN": certified, "IE_DB_DSN": certified, "DB_TLS_CA_FILE": ca.CAFile,
		"DB_TLS_CERT_FILE": clientCert, "DB_TLS_KEY_FILE": clientKey})
	require.NoError(t, err, "REQUIRE X509 with the client certificate")
	assert.NotEmpty(t, cipher(withCert))

	wrong := testenv.NewTestCA(t, "wrong")
	_, _, err = start(map[string]string{"WMS_DB_DSN": m.AppDSN(wms), "IE_DB_DSN": m.AppDSN(ie), "DB_TLS_CA_FILE": wrong.CAFile})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), "WMS_DB_DSN: the database server's TLS certificate does not verify against the configured CA file")
	assert.NotContains(t, err.Error(), "\n")
	assert.NotContains(t, err.Error(), "app-password")

	// tls=true without DB_TLS_CA_FILE verifies against the system's CAs,
	// which do not know the test CA.
	_, _, err = start(map[string]string{"WMS_DB_DSN": m.AppDSN(wms) + "&tls=true", "IE_DB_DSN": m.AppDSN(ie) + "&tls=true"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WMS_DB_DSN: the database server's TLS certificate does not verify against the system's trusted CAs (tls=true)")

	// The right CA, but a certificate for another name: the name is
	// checked against the DSN's host (127.0.0.1).
	ca.Issue(t, "server", "10.9.8.7", "db.example.com") // the same files, reloaded
	_, err = m.Root().ExecContext(ctx, "FLUSH SSL")
	require.NoError(t, err)
	_, _, err = start(map[string]string{"WMS_DB_DSN": m.AppDSN(wms), "IE_DB_DSN": m.AppDSN(ie), "DB_TLS_CA_FILE": ca.CAFile})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), "does not verify against the configured CA file")
	assert.Contains(t, err.Error(), "certificate is valid for 10.9.8.7, not 127.0.0.1")
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
