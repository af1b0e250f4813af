package mysql_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/mysql"
)

// TestSettingsAreTheDefaults: SCAN_CHUNK_SIZE's and DB_MAX_OPEN_CONNS's
// defaults in the settings list are the store's own (mysql.Options).
func TestSettingsAreTheDefaults(t *testing.T) {
	t.Parallel()
	want := map[string]int{"SCAN_CHUNK_SIZE": mysql.DefaultChunkSize, "DB_MAX_OPEN_CONNS": mysql.DefaultMaxOpenConns}
	seen := map[string]bool{}
	for _, s := range config.Settings {
		w, ok := want[s.Name]
		if !ok {
			continue
		}
		seen[s.Name] = true
		n, err := strconv.Atoi(s.Default)
		assert.NoError(t, err, s.Name)
		assert.Equal(t, w, n, "%s's default", s.Name)
	}
	assert.Len(t, seen, len(want), "all are settings")
}
