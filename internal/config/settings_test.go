package config_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/config"
)

// TestLoadersReadExactlyTheirSettings: each loader reads every setting
// Settings lists for its binary and no other (an unlisted name panics), so
// --help, which prints Settings, names every variable the binary reads.
func TestLoadersReadExactlyTheirSettings(t *testing.T) {
	t.Parallel()
	loaders := map[config.Binary]func(config.Getenv) error{
		config.BinScanner:   func(g config.Getenv) error { _, err := config.LoadScanner(g); return err },
		config.BinRefresher: func(g config.Getenv) error { _, err := config.LoadRefresher(g); return err },
		config.BinDashboard: func(g config.Getenv) error { _, err := config.LoadDashboard(g); return err },
	}
	for bin, load := range loaders {
		t.Run(string(bin), func(t *testing.T) {
			t.Parallel()
			read := map[string]bool{}
			require.NotPanics(t, func() {
				_ = load(func(name string) string { read[name] = true; return "" })
			})
			var got, want []string
			for name := range read {
				got = append(got, name)
			}
			for _, s := range config.SettingsOf(bin) {
				want = append(want, s.Name)
			}
			sort.Strings(got)
			sort.Strings(want)
			assert.Equal(t, want, got, "the names the %s reads (with nothing set) and the ones its --help lists", bin)
		})
	}
}

// TestSettingsTable: one entry per name and binary, a one-line meaning, and
// every default printable.
func TestSettingsTable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range config.Settings {
		require.NotEmpty(t, s.Bins, s.Name)
		for _, b := range s.Bins {
			key := string(b) + " " + s.Name
			assert.False(t, seen[key], "%s is listed twice", key)
			seen[key] = true
		}
		assert.NotEmpty(t, s.Meaning, s.Name)
		assert.NotContains(t, s.Meaning, "\n", s.Name)
		assert.NotEmpty(t, s.Shown(), "%s needs a Default or an Unset text", s.Name)
		assert.False(t, s.Default != "" && s.Unset != "", "%s has both a Default and an Unset text", s.Name)
	}
}

// TestSettingsDocMatchesTheCode: docs/settings.md's table has one row per
// setting and binary, with the default --help prints, and no row the code
// does not read (tokenctl's and the flags' rows aside).
func TestSettingsDocMatchesTheCode(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/settings.md")
	require.NoError(t, err)
	row := regexp.MustCompile("^\\| `([A-Z_]+)` \\| ([a-z, ]+) \\| ([^|]+) \\|")
	got := map[string]string{} // "binary NAME" → default as the doc shows it
	for _, line := range strings.Split(string(doc), "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil || m[2] == "tokenctl" {
			continue
		}
		bins := strings.Split(m[2], ", ")
		if m[2] == "both" {
			bins = []string{"scanner", "refresher"}
		}
		for _, b := range bins {
			key := b + " " + m[1]
			assert.NotContains(t, got, key, "docs/settings.md lists %s twice", key)
			got[key] = strings.Trim(strings.TrimSpace(m[3]), "`")
		}
	}
	want := map[string]string{}
	for _, s := range config.Settings {
		for _, b := range s.Bins {
			want[string(b)+" "+s.Name] = s.Shown()
		}
	}
	assert.Equal(t, want, got, "docs/settings.md's table (binary NAME → default) and config.Settings")
}
