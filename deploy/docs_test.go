package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestRunBannerIsDocumented: the make run banner the README and
// docs/development.md show is the one scripts/run-local.sh prints with its
// default ports and development credentials.
func TestRunBannerIsDocumented(t *testing.T) {
	t.Parallel()
	script := string(read(t, "scripts/run-local.sh"))
	tmpl := regexp.MustCompile(`(?s)cat <<MSG\n\n(.*?)\n\nMSG\n`).FindStringSubmatch(script)
	require.NotNil(t, tmpl, "run-local.sh prints its banner with cat <<MSG")

	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(?:export )?(\w+)="?\$\{\w+:-([^}]*)\}"?$`).FindAllStringSubmatch(script, -1) {
		vars[m[1]] = regexp.QuoteMeta(m[2])
	}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)=([\w/]+)$`).FindAllStringSubmatch(script, -1) {
		vars[m[1]] = regexp.QuoteMeta(m[2])
	}
	// The providers line names the temporary copy of deploy/providers.yaml.
	p := regexp.MustCompile(`\|\| providers="([^"]+)"`).FindStringSubmatch(script)
	require.NotNil(t, p)
	vars["providers"] = strings.ReplaceAll(regexp.QuoteMeta(p[1]), `\$PROVIDERS_FILE`, `/tmp/token-refresher-providers\.\S+\.yaml`)
	for _, name := range []string{"SANDBOX_PORT", "REFRESHER_PORT", "SCANNER_PORT", "DASHBOARD_USER", "API_TOKEN", "WMS_DB", "IE_DB", "logdir"} {
		require.Contains(t, vars, name, "run-local.sh's default of %s", name)
	}
	re := regexp.MustCompile(`\\\$(\w+)`).ReplaceAllStringFunc(regexp.QuoteMeta(tmpl[1]), func(v string) string {
		name := v[2:]
		val, ok := vars[name]
		require.True(t, ok, "the banner's $%s has a default the test knows", name)
		return val
	})
	banner := regexp.MustCompile(`(?m)^` + re + `$`)
	for _, doc := range []struct{ file, marker string }{
		{"README.md", "`make run` prints its banner"},
		{"docs/development.md", "A first run on empty dev databases"},
	} {
		sample := strings.Join(testenv.Sample(t, doc.file, doc.marker), "\n")
		assert.Regexp(t, banner, sample, "%s shows the banner run-local.sh prints", doc.file)
	}
}

// TestDocLinksResolve: every relative link of README.md and docs/*.md names
// a file that exists and, after #, a heading of it.
func TestDocLinksResolve(t *testing.T) {
	t.Parallel()
	top := root(t)
	files, err := filepath.Glob(filepath.Join(top, "docs", "*.md"))
	require.NoError(t, err)
	files = append(files, filepath.Join(top, "README.md"))
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		rel, _ := filepath.Rel(top, f)
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := f
			if file != "" {
				path = filepath.Join(filepath.Dir(f), file)
			}
			body, err := os.ReadFile(path)
			if !assert.NoError(t, err, "%s links to %s", rel, target) || anchor == "" {
				continue
			}
			assert.Contains(t, anchors(string(body)), anchor, "%s links to %s: no such heading", rel, target)
		}
	}
}

// anchors are the ids GitHub gives a markdown file's headings.
func anchors(md string) []string {
	var out []string
	fence := false
	strip := regexp.MustCompile(`[^\p{L}\p{N} _-]`)
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "```") {
			fence = !fence
		}
		if fence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		out = append(out, strings.ReplaceAll(strip.ReplaceAllString(h, ""), " ", "-"))
	}
	return out
}
