package deploy

import (
	"strings"
	"testing"
)

func TestStatementsSplitCleanly(t *testing.T) {
	for name, sts := range map[string][]string{"schema": Schema("a", "b"), "seed": Seed("a", "b")} {
		if len(sts) == 0 {
			t.Fatalf("%s: no statements", name)
		}
		for _, s := range sts {
			head := strings.Fields(s)[0]
			if head != "CREATE" && head != "INSERT" {
				t.Errorf("%s: statement starts with %q: a semicolon inside a comment split it:\n%s", name, head, s)
			}
			if strings.Contains(s, WMSDatabase) || strings.Contains(s, IEDatabase) {
				t.Errorf("%s: database name not replaced:\n%s", name, s)
			}
		}
	}
}
