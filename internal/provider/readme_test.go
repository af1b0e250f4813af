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

// TestReadmeShowsTheVerdictTables: README's "Token flows" shows every row
// of each kind's table, in order, as the code has it; a changed table
// fails here until the README says the same.
func TestReadmeShowsTheVerdictTables(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for kind, lines := range map[string][]string{
		"ajio":           rows(ajio.Verdicts),
		"oauth2_refresh": rows(oauth2refresh.Verdicts),
		"unicommerce":    rows(unicommerce.Verdicts),
	} {
		block := strings.Join(lines, "\n")
		if os.Getenv("PRINT_VERDICTS") != "" {
			fmt.Printf("%s\n%s\n\n", kind, block)
		}
		if !strings.Contains(text, block) {
			t.Errorf("README.md does not show the %s verdict table as the code has it:\n%s", kind, block)
		}
	}
}
