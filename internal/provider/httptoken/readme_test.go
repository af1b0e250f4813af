package httptoken_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/eshopbox/token-refresher/internal/provider/httptoken"
)

// TestReadmeShowsTheVerdictTable: README's "Token flows" shows every row
// of the http_token table, in order, as the code has it.
func TestReadmeShowsTheVerdictTable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range httptoken.Verdicts {
		lines = append(lines, fmt.Sprintf("| %s | %s |", r.Shape, r.Verdict))
	}
	block := strings.Join(lines, "\n")
	if !strings.Contains(string(readme), block) {
		t.Errorf("README.md does not show the http_token verdict table as the code has it:\n%s", block)
	}
}
