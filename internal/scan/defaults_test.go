package scan_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/scan"
)

// TestFailureCooldownSettingIsTheDefault: FAILURE_COOLDOWN's default as the
// settings list gives it (--help, docs/settings.md, the loaders) is
// scan.DefaultFailureCooldown, for the scanner that applies it and the
// refresher whose API tells from it. The list keeps its value as text ("1h"
// reads better than Duration.String's "1h0m0s"), so this keeps the two
// from drifting apart.
func TestFailureCooldownSettingIsTheDefault(t *testing.T) {
	t.Parallel()
	n := 0
	for _, s := range config.Settings {
		if s.Name != "FAILURE_COOLDOWN" {
			continue
		}
		n++
		d, err := time.ParseDuration(s.Default)
		if assert.NoError(t, err, "%v", s.Bins) {
			assert.Equal(t, scan.DefaultFailureCooldown, d, "FAILURE_COOLDOWN's default for %v", s.Bins)
		}
	}
	assert.NotZero(t, n, "FAILURE_COOLDOWN is a setting")
}

// TestScanSettingsAreTheDefaults: SCAN_INTERVAL's and SCAN_CONCURRENCY's
// defaults in the settings list are the scan's own.
func TestScanSettingsAreTheDefaults(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range config.Settings {
		switch s.Name {
		case "SCAN_INTERVAL":
			d, err := time.ParseDuration(s.Default)
			assert.NoError(t, err)
			assert.Equal(t, scan.DefaultInterval, d, "SCAN_INTERVAL's default")
		case "SCAN_CONCURRENCY":
			n, err := strconv.Atoi(s.Default)
			assert.NoError(t, err)
			assert.Equal(t, scan.DefaultConcurrency, n, "SCAN_CONCURRENCY's default")
		default:
			continue
		}
		seen[s.Name] = true
	}
	assert.Len(t, seen, 2, "both are settings")
}
