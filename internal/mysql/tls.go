package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	driver "github.com/go-sql-driver/mysql"
)

// TLSConfigName is the name RegisterTLS registers the database TLS
// settings under with go-sql-driver. A DSN may name it (tls=token-refresher)
// or say tls=custom; see TLS for the DSNs that use it without naming it.
const TLSConfigName = "token-refresher"

// TLS says how ParseDSNWith treats a DSN's tls parameter.
type TLS struct {
	// Registered: RegisterTLS has registered the settings of
	// DB_TLS_CA_FILE (and DB_TLS_CERT_FILE, DB_TLS_KEY_FILE) under
	// TLSConfigName. A DSN without a tls parameter, or with tls=true,
	// tls=custom or tls=token-refresher, then uses them. tls=false stays
	// plaintext: it is an explicit choice.
	Registered bool
	// AllowInsecure accepts tls=preferred, tls=skip-verify and
	// allowFallbackToPlaintext=true (DB_TLS_ALLOW_INSECURE), which
	// ParseDSNWith otherwise refuses.
	AllowInsecure bool
}

// RegisterTLS registers, under TLSConfigName, TLS settings that verify the
// server's certificate against roots (and its name against the DSN's host,
// which go-sql-driver fills in) and present certs, when given, as the
// client's certificate. TLS 1.2 is the oldest version it accepts.
func RegisterTLS(roots *x509.CertPool, certs []tls.Certificate) error {
	if roots == nil {
		return errors.New("mysql.RegisterTLS: no CA certificates")
	}
	return driver.RegisterTLSConfig(TLSConfigName, &tls.Config{
		RootCAs:      roots,
		Certificates: certs,
		MinVersion:   tls.VersionTLS12,
	})
}

// CertPool parses a PEM bundle of CA certificates. Its errors never quote
// the content.
func CertPool(pemBytes []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
	}
	return pool, nil
}

// insecureTLS is why ParseDSNWith refuses a DSN that turns verification off.
const insecureTLS = "does not verify the database server's certificate, so anyone on the path can read " +
	"and change the traffic, and the database holds sellers' passwords and tokens; use tls=true " +
	"(the system's CAs) or DB_TLS_CA_FILE, or set DB_TLS_ALLOW_INSECURE=true to accept it"

// applyTLS rewrites the DSN's tls parameter as t says (see TLS) and
// refuses the settings that skip verification unless t allows them. It
// runs before go-sql-driver parses the DSN, which looks a config name up
// in its registry.
func applyTLS(dsn string, t TLS) (string, error) {
	v, set := dsnParam(dsn, "tls")
	lv := strings.ToLower(v)
	switch {
	case lv == "preferred" || lv == "skip-verify":
		if !t.AllowInsecure {
			return "", fmt.Errorf("tls=%s %s", lv, insecureTLS)
		}
	case t.Registered && (!set || isTrue(lv) || lv == "custom" || v == TLSConfigName):
		dsn = setDSNParam(dsn, "tls", TLSConfigName)
	case lv == "custom" || v == TLSConfigName:
		return "", fmt.Errorf("tls=%s needs DB_TLS_CA_FILE (the CA that signs the database server's certificate)", v)
	}
	if fb, ok := dsnParam(dsn, "allowFallbackToPlaintext"); ok && isTrue(strings.ToLower(fb)) && !t.AllowInsecure {
		return "", fmt.Errorf("allowFallbackToPlaintext=true %s", insecureTLS)
	}
	return dsn, nil
}

func isTrue(lv string) bool { return lv == "1" || lv == "true" }

// setDSNParam sets a go-sql-driver DSN parameter, where dsnParam reads it.
func setDSNParam(dsn, name, value string) string {
	slash := strings.LastIndex(dsn, "/") + 1
	head, tail := dsn[:slash], dsn[slash:]
	db, params, ok := strings.Cut(tail, "?")
	if !ok || params == "" {
		return head + db + "?" + name + "=" + value
	}
	parts := strings.Split(params, "&")
	found := false
	for i, kv := range parts {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			parts[i] = name + "=" + value
			found = true
		}
	}
	if !found {
		parts = append(parts, name+"="+value)
	}
	return head + db + "?" + strings.Join(parts, "&")
}
