package testenv

import (
	"path/filepath"
	"testing"
)

func TestToolFindsAnInstalledTool(t *testing.T) {
	t.Parallel()
	if p := Tool(t, "bash"); filepath.Base(p) != "bash" {
		t.Fatalf("Tool(bash) = %q", p)
	}
}

// A tool that is missing and cannot be installed skips the test that needs
// it (with a NOT CHECKED message) rather than letting it pass.
func TestToolSkipsWhatItCannotInstall(t *testing.T) {
	t.Parallel()
	var skipped, returned bool
	t.Run("needs a tool nobody packages", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		Tool(t, "no-such-tool-for-token-refresher")
		returned = true
	})
	if returned || !skipped {
		t.Fatalf("returned=%v skipped=%v: a missing tool must skip the test", returned, skipped)
	}
}
