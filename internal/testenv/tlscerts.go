package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eshopbox/token-refresher/internal/procs"
)

// TestCA is a certificate authority of a test's own, made with openssl in
// a temporary directory: its certificate is CAFile.
type TestCA struct {
	dir    string
	name   string
	CAFile string
	key    string
}

// NewTestCA makes a CA (RSA 2048, valid for a day) named name, which also
// names its files. A fault, or openssl missing, fails the test.
func NewTestCA(t testing.TB, name string) *TestCA {
	t.Helper()
	dir := t.TempDir()
	ca := &TestCA{dir: dir, name: name, CAFile: filepath.Join(dir, name+"-ca.pem"), key: filepath.Join(dir, name+"-ca.key")}
	openssl(t, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
		"-subj", "/CN="+name+" test CA", "-keyout", ca.key, "-out", ca.CAFile,
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	return ca
}

// Issue makes a certificate signed by the CA for the given names (DNS
// names, or IP addresses, which go to the subjectAltName as such) and
// returns its certificate and key files. The first name is also the
// common name.
func (ca *TestCA) Issue(t testing.TB, file string, names ...string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(ca.dir, file+".pem"), filepath.Join(ca.dir, file+".key")
	csr := filepath.Join(ca.dir, file+".csr")
	ext := filepath.Join(ca.dir, file+".ext")
	var sans []string
	for _, n := range names {
		if strings.ContainsAny(n, ":") || strings.Trim(n, "0123456789.") == "" {
			sans = append(sans, "IP:"+n)
		} else {
			sans = append(sans, "DNS:"+n)
		}
	}
	writeFile(t, ext, "subjectAltName="+strings.Join(sans, ",")+"\nextendedKeyUsage=serverAuth,clientAuth\n")
	openssl(t, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN="+names[0], "-keyout", key, "-out", csr)
	openssl(t, "x509", "-req", "-in", csr, "-CA", ca.CAFile, "-CAkey", ca.key, "-CAcreateserial",
		"-days", "1", "-extfile", ext, "-out", cert)
	return cert, key
}

func openssl(t testing.TB, args ...string) {
	t.Helper()
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("testenv: openssl is not installed (apt-get install openssl): %v", err)
	}
	if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: openssl %s: %v: %s", args[0], err, procs.FirstLines(string(out), 8))
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
