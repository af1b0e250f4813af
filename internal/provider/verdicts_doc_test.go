package provider_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eshopbox/token-refresher/internal/provider"
	"github.com/eshopbox/token-refresher/internal/provider/ajio"
	"github.com/eshopbox/token-refresher/internal/provider/oauth2refresh"
	"github.com/eshopbox/token-refresher/internal/provider/unicommerce"
)

func rows[A any](table []provider.Row[A]) []string {
	var out []string
	for _, r := range table {
		out = append(out, fmt.Sprintf("| %s | %s |", r.Shape, r.Verdict))
	}
	return out
}

// TestDocsShowTheVerdictTables: docs/token-flows.md shows each kind's
// table whole (its header, every row in order, nothing more), as the code
// has it; a changed table fails here until the doc says the same.
func TestDocsShowTheVerdictTables(t *testing.T) {
	readme, err := os.ReadFile("../../docs/token-flows.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for kind, lines := range map[string][]string{
		"ajio":           rows(ajio.Verdicts),
		"oauth2_refresh": rows(oauth2refresh.Verdicts),
		"unicommerce":    rows(unicommerce.Verdicts),
	} {
		block := "| answer | verdict |\n|---|---|\n" + strings.Join(lines, "\n") + "\n\n"
		if os.Getenv("PRINT_VERDICTS") != "" {
			fmt.Printf("%s\n%s\n\n", kind, block)
		}
		if !strings.Contains(text, block) {
			t.Errorf("docs/token-flows.md does not show the %s verdict table as the code has it:\n%s", kind, block)
		}
	}
}
