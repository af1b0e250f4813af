package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/config"
)

// TestHelp: --help exits 0 and lists every setting the scanner reads with
// its default; a bad setting is the one line the README quotes.
func TestHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &errOut)
	assert.Equal(t, 0, code)
	assert.Empty(t, errOut.String())
	for _, s := range config.SettingsOf(config.BinScanner) {
		assert.Regexp(t, `(?m)^  `+s.Name+` +`+regexp.QuoteMeta(s.Shown())+`\n      `+regexp.QuoteMeta(s.Meaning)+`$`, out.String())
	}
	assert.Contains(t, out.String(), "-dry-run")

	out.Reset()
	errOut.Reset()
	code = run(context.Background(), nil, func(k string) string {
		return map[string]string{"WMS_DB_DSN": "u@tcp(127.0.0.1:1)/a", "IE_DB_DSN": "u@tcp(127.0.0.1:1)/b", "SCAN_INTERVAL": "soon"}[k]
	}, &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Equal(t, "scanner: invalid setting SCAN_INTERVAL: \"soon\" is not a duration (like 30s, 1m, 1h)\n", errOut.String(),
		"README.md and docs/settings.md quote this line")
}
