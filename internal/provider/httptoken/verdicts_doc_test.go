package httptoken_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
)

// TestDocsShowTheVerdictTable: docs/token-flows.md shows the http_token
// table whole (its header, every row in order, nothing more), as the code
// has it.
func TestDocsShowTheVerdictTable(t *testing.T) {
	readme, err := os.ReadFile("../../../docs/token-flows.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range httptoken.Verdicts {
		lines = append(lines, fmt.Sprintf("| %s | %s |", r.Shape, r.Verdict))
	}
	block := "| answer | verdict |\n|---|---|\n" + strings.Join(lines, "\n") + "\n\n"
	if !strings.Contains(string(readme), block) {
		t.Errorf("docs/token-flows.md does not show the http_token verdict table as the code has it:\n%s", block)
	}
}
