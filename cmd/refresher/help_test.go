package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestHelp: --help exits 0 and lists every setting the refresher reads with
// its default, and the README's excerpt of it is what it prints.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, arg := range []string{"--help", "-h"} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{arg}, func(string) string { return "" }, &out, &errOut)
		assert.Equal(t, 0, code, arg)
		assert.Empty(t, errOut.String(), arg)
		for _, s := range config.SettingsOf(config.BinRefresher) {
			assert.Regexp(t, `(?m)^  `+s.Name+` +`+regexp.QuoteMeta(s.Shown())+`\n      `+regexp.QuoteMeta(s.Meaning)+`$`, out.String(), arg)
		}
		assert.Contains(t, out.String(), "-try int")
		missing := testenv.InOrder(testenv.Sample(t, "README.md", "The start of `refresher --help`"), out.String(),
			func(want, got string) bool { return want == got })
		assert.Empty(t, missing, "README's refresher --help excerpt has a line --help does not print (in that order)")
	}
}

// TestArgumentMistakes: a stray argument or an unknown flag exits 2 with
// one line saying so and the usage.
func TestArgumentMistakes(t *testing.T) {
	t.Parallel()
	for args, want := range map[string]string{
		"now":     `refresher: unexpected argument "now"; usage: refresher [--try <connection id> [--spend-refresh-token]] (refresher --help lists the flags and settings)` + "\n",
		"--bogus": "flag provided but not defined: -bogus\nrefresher: usage: refresher [--try <connection id> [--spend-refresh-token]] (refresher --help lists the flags and settings)\n",
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), strings.Fields(args), func(string) string { return "" }, &out, &errOut)
		assert.Equal(t, 2, code, args)
		assert.Equal(t, want, errOut.String(), args)
	}
}
