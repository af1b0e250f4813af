package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/config"
)

// TestHelp: --help exits 0 and lists every setting the dashboard reads with
// its default; any other argument is refused with one line.
func TestHelp(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &errOut)
	assert.Equal(t, 0, code)
	assert.Empty(t, errOut.String())
	for _, s := range config.SettingsOf(config.BinDashboard) {
		assert.Regexp(t, `(?m)^  `+s.Name+` +`+regexp.QuoteMeta(s.Shown())+`\n      `+regexp.QuoteMeta(s.Meaning)+`$`, out.String())
	}

	out.Reset()
	code = run(context.Background(), []string{"serve"}, func(string) string { return "" }, &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Equal(t, "dashboard: unexpected argument \"serve\": it takes none and is configured by the environment (dashboard --help lists it)\n", errOut.String())
}
