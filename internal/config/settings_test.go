package config_test

import (
	"sort"
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
