package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Sample is the first fenced block (```) after the first line of the
// repository file rel that contains marker: a sample output the docs show.
// Lines that are only "…" stand for lines left out and are dropped.
func Sample(t testing.TB, rel, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(RepoRoot(t), rel))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	lines := strings.Split(string(b), "\n")
	i := 0
	for i < len(lines) && !strings.Contains(lines[i], marker) {
		i++
	}
	for i < len(lines) && !strings.HasPrefix(lines[i], "```") {
		i++
	}
	if i == len(lines) {
		t.Fatalf("testenv: %s has no sample after %q", rel, marker)
	}
	var out []string
	for _, l := range lines[i+1:] {
		if strings.HasPrefix(l, "```") {
			return out
		}
		if strings.TrimSpace(l) != "…" {
			out = append(out, l)
		}
	}
	t.Fatalf("testenv: %s: the sample after %q is not closed", rel, marker)
	return nil
}

// InOrder reports the first of want's lines that is not a line of got,
// after the previous one was found (matched by same, e.g. equality), or ""
// when every line is there in order.
func InOrder(want []string, got string, same func(want, got string) bool) string {
	lines := strings.Split(got, "\n")
	j := 0
	for _, w := range want {
		for j < len(lines) && !same(w, lines[j]) {
			j++
		}
		if j == len(lines) {
			return w
		}
		j++
	}
	return ""
}
