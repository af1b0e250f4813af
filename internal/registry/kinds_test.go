package registry

import (
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestKindsTable: each line of the table is a whole kind, named once,
// whose keys are keys of the file.
func TestKindsTable(t *testing.T) {
	t.Parallel()
	assert.True(t, strings.HasPrefix(kindList, "ajio, oauth2_refresh, unicommerce, http_token"), kindList)
	seen := map[string]bool{}
	for i, k := range kinds {
		// The error's list names every kind of the table, in its order.
		sep := ", "
		if i == len(kinds)-1 {
			sep = " or "
		}
		if i > 0 {
			assert.Contains(t, kindList, sep+k.Name, "the list of kinds names %s", k.Name)
		}
		assert.NotEmpty(t, k.Name)
		assert.False(t, seen[k.Name], "kind %s is listed twice", k.Name)
		seen[k.Name] = true
		assert.NotNil(t, k.Defaults, k.Name)
		assert.NotNil(t, k.Check, k.Name)
		assert.NotNil(t, k.New, k.Name)
		for _, key := range k.Keys {
			assert.True(t, slices.Contains(entryKeys, key), "kind %s takes %s, which is no key of the file", k.Name, key)
			assert.True(t, slices.ContainsFunc(kindKeys, func(f kindKey) bool { return f.key == key }), key)
		}
	}
}
