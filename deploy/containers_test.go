package deploy_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/config"
	"github.com/eshopbox/token-refresher/internal/startup"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// settings are the environment variables the binaries read: the names in
// the config package and the sandbox's command. An environment entry of a
// container that is not one of them is a typo that would be silently
// ignored.
func settings(t *testing.T) map[string]bool {
	t.Helper()
	name := regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)
	files, err := filepath.Glob(filepath.Join(root(t), "internal", "config", "*.go"))
	require.NoError(t, err)
	files = append(files, filepath.Join(root(t), "cmd", "sandbox", "main.go"))
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
	}
	for _, s := range []string{"WMS_DB_DSN", "REDIS_URL", "HTTP_ADDR", "SANDBOX_ADDR", "DASHBOARD_PASSWORD"} {
		require.True(t, out[s], "the settings scan missed %s", s)
	}
	return out
}

type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []any             `yaml:"volumes"`
		Ports       []any             `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		StopGracePeriod string `yaml:"stop_grace_period"`
	} `yaml:"services"`
}

// TestDockerComposeConfig validates docker-compose.yml with Debian's
// docker-compose (`config` needs no engine) and checks what a newcomer's
// `docker compose up` relies on. What it cannot check here (no engine):
// that the images pull and build and the containers start.
func TestDockerComposeConfig(t *testing.T) {
	t.Parallel()
	compose := testenv.Tool(t, "docker-compose")
	out := runTool(t, root(t), compose, "-f", "docker-compose.yml", "config")
	var c composeFile
	require.NoError(t, yaml.Unmarshal([]byte(out), &c), "docker-compose config prints the resolved file")

	for _, s := range []string{"mysql", "redis", "sandbox", "scanner", "refresher", "asynqmon", "prometheus"} {
		require.Contains(t, c.Services, s)
	}
	str := func(v any) string {
		switch v := v.(type) {
		case string:
			return v
		case map[string]any:
			src, _ := v["source"].(string)
			dst, _ := v["target"].(string)
			return src + ":" + dst
		}
		return ""
	}
	var initdb bool
	for _, v := range c.Services["mysql"].Volumes {
		if s := str(v); strings.HasSuffix(strings.SplitN(s, ":", 2)[0], "/deploy/mysql") && strings.Contains(s, ":/docker-entrypoint-initdb.d") {
			initdb = true
		}
	}
	assert.True(t, initdb, "MySQL starts with the deploy/ schema")
	var promConf bool
	for _, v := range c.Services["prometheus"].Volumes {
		s := str(v)
		if strings.Contains(s, "/deploy/prometheus:/etc/prometheus") {
			promConf = true
		}
	}
	assert.True(t, promConf, "Prometheus gets deploy/prometheus")

	known := settings(t)
	stages := dockerStages(t)
	for _, name := range []string{"sandbox", "scanner", "refresher", "asynqmon"} {
		svc := c.Services[name]
		assert.NotNil(t, svc.Build, "%s is built from the Dockerfile", name)
		require.Len(t, svc.Command, 1, name)
		bin := svc.Command[0]
		_, err := os.Stat(filepath.Join(root(t), "cmd", bin, "main.go"))
		assert.NoError(t, err, "%s runs cmd/%s", name, bin)
		// The image it is built from holds that binary: the production
		// image for the product, the demo image for the sandbox.
		build, _ := svc.Build.(map[string]any)
		target, _ := build["target"].(string)
		require.NotEmpty(t, target, "%s names its Dockerfile target", name)
		bins, _ := imageBinaries(t, stages, target)
		assert.Contains(t, bins, bin, "%s runs %s from the %s image", name, bin, target)
		if name != "sandbox" {
			assert.Equal(t, "production", target, "%s runs the production image", name)
		}
		for k := range svc.Environment {
			assert.True(t, known[k], "%s: %s is not a setting any binary reads", name, k)
		}
		for _, p := range svc.Ports {
			assert.True(t, strings.HasPrefix(str(p), "127.0.0.1:") || strings.Contains(str(p), "127.0.0.1"),
				"%s publishes %v beyond this machine", name, p)
		}
	}
	for _, name := range []string{"scanner", "refresher"} {
		for _, dep := range []string{"mysql", "redis"} {
			assert.Equal(t, "service_healthy", c.Services[name].DependsOn[dep].Condition, "%s waits for %s", name, dep)
		}
	}

	// The binaries would start with this configuration.
	env := func(name string) config.Getenv {
		vars := c.Services[name].Environment
		return func(k string) string { return vars[k] }
	}
	_, err := startup.LoadScanner(env("scanner"))
	assert.NoError(t, err, "the scanner's compose environment")
	r, err := startup.LoadRefresher(env("refresher"))
	require.NoError(t, err, "the refresher's compose environment")
	assert.NotEmpty(t, r.APIToken)
	assert.NotEmpty(t, r.DashboardUser)
	_, err = config.LoadDashboard(env("asynqmon"))
	assert.NoError(t, err, "the dashboard's compose environment")
	grace, err := time.ParseDuration(c.Services["refresher"].StopGracePeriod)
	require.NoError(t, err, "the refresher has a stop_grace_period")
	assert.GreaterOrEqual(t, grace, r.DrainTimeout+5*time.Second, "docker stop waits for the drain")
}

// stage is one FROM of the Dockerfile.
type stage struct {
	name, base string
	builds     []string // the ./cmd/<name> packages its go build line names
	buildLine  string
	copyFrom   []string // the stages its COPY --from names
}

// prodBinaries are the production image's binaries, and demoBinaries the
// demo image's (--target demo).
var (
	prodBinaries = []string{"scanner", "refresher", "dashboard", "tokenctl"}
	demoBinaries = []string{"demo", "sandbox"}
)

// dockerStages parses the Dockerfile's stages, in order.
func dockerStages(t *testing.T) []stage {
	t.Helper()
	from := regexp.MustCompile(`^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`)
	build := regexp.MustCompile(`^RUN (CGO_ENABLED=0 .*go build .*)$`)
	pkg := regexp.MustCompile(`^\./cmd/([a-z0-9_-]+|\.\.\.)$`)
	copyFrom := regexp.MustCompile(`^COPY\s+--from=(\S+)`)
	var stages []stage
	for _, line := range strings.Split(string(read(t, "Dockerfile")), "\n") {
		if m := from.FindStringSubmatch(line); m != nil {
			stages = append(stages, stage{base: m[1], name: m[2]})
			continue
		}
		if len(stages) == 0 {
			continue
		}
		st := &stages[len(stages)-1]
		if m := build.FindStringSubmatch(line); m != nil {
			st.buildLine = m[1]
			for _, f := range strings.Fields(m[1]) {
				if p := pkg.FindStringSubmatch(f); p != nil {
					st.builds = append(st.builds, p[1])
				}
			}
		}
		if m := copyFrom.FindStringSubmatch(line); m != nil {
			st.copyFrom = append(st.copyFrom, m[1])
		}
	}
	return stages
}

// imageBinaries follows a run stage's COPY --from back to the stage that
// built its binaries.
func imageBinaries(t *testing.T, stages []stage, target string) (binaries []string, buildLine string) {
	t.Helper()
	byName := map[string]stage{}
	for _, s := range stages {
		byName[s.name] = s
	}
	run, ok := byName[target]
	require.True(t, ok, "the Dockerfile has a stage %q", target)
	require.Len(t, run.copyFrom, 1, "stage %s copies its binaries from one build stage", target)
	b, ok := byName[run.copyFrom[0]]
	require.True(t, ok, "stage %s copies from %s, a stage of the Dockerfile", target, run.copyFrom[0])
	require.NotEmpty(t, b.buildLine, "stage %s has a go build line", b.name)
	return b.builds, b.buildLine
}

// TestDockerfile checks the Dockerfile's shape: the production image (the
// last stage, the default target) holds exactly the four production
// binaries and the demo image the demo and the sandbox, both distroless
// static, non-root. It then builds the binaries the way the build stages
// do, asserting they are static. What it cannot check here (no engine):
// `docker build` itself and the base images.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := string(read(t, "Dockerfile"))
	stages := dockerStages(t)
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage build")
	final := stages[len(stages)-1]
	assert.Equal(t, "production", final.name, "the last stage (docker build's default target) is the production image")
	for _, target := range []string{"production", "demo"} {
		for _, s := range stages {
			if s.name == target {
				assert.True(t, strings.HasPrefix(s.base, "gcr.io/distroless/static") && strings.HasSuffix(s.base, ":nonroot") || s.base == "scratch",
					"the %s stage is distroless static nonroot or scratch, not %s", target, s.base)
			}
		}
	}
	assert.Regexp(t, `(?m)^USER\s+(nonroot|65532)`, df, "runs as a non-root user")
	assert.Equal(t, 2, len(regexp.MustCompile(`(?m)^USER\s+(nonroot|65532)`).FindAllString(df, -1)), "both images run as non-root")
	assert.Contains(t, df, "CGO_ENABLED=0")
	assert.NotContains(t, df, "./cmd/...", "the images name their binaries; ./cmd/... would put every tool in production")

	prod, prodLine := imageBinaries(t, stages, "production")
	assert.ElementsMatch(t, prodBinaries, prod, "the production image holds exactly the production binaries")
	demo, demoLine := imageBinaries(t, stages, "demo")
	assert.ElementsMatch(t, demoBinaries, demo, "the demo image holds the demo and the sandbox")

	// Build like the Dockerfile does and check every binary is static.
	if testing.Short() {
		t.Skip("the static build of every binary is left out of -short (make test-short); make test runs it")
	}
	outFlag := regexp.MustCompile(`\s-o\s+\S+`)
	for _, line := range []string{prodLine, demoLine} {
		// The build stage's line as it is, run by the shell, writing to a
		// temporary directory instead of the stage's.
		out := t.TempDir()
		require.Regexp(t, outFlag, line)
		line = outFlag.ReplaceAllLiteralString(line, " -o "+out+string(os.PathSeparator))
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = root(t)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", line, b)
		bins, err := os.ReadDir(out)
		require.NoError(t, err)
		var names []string
		for _, e := range bins {
			names = append(names, e.Name())
			f, err := elf.Open(filepath.Join(out, e.Name()))
			require.NoError(t, err)
			for _, p := range f.Progs {
				assert.NotEqual(t, elf.PT_INTERP, p.Type, "%s needs a dynamic loader", e.Name())
			}
			libs, err := f.ImportedLibraries()
			require.NoError(t, err)
			assert.Empty(t, libs, "%s links shared libraries", e.Name())
			f.Close()
		}
		t.Logf("built %v as the Dockerfile does: static", names)
	}
}

// TestOneGoRelease: go.mod's toolchain line, the Makefile's and CI's
// GOTOOLCHAIN and the Dockerfile's builder image name the same Go release.
func TestOneGoRelease(t *testing.T) {
	t.Parallel()
	m := regexp.MustCompile(`(?m)^toolchain go(\d+\.\d+\.\d+)$`).FindStringSubmatch(string(read(t, "go.mod")))
	require.NotNil(t, m, "go.mod has a toolchain line")
	want := m[1]
	assert.Regexp(t, `(?m)^export GOTOOLCHAIN := go`+regexp.QuoteMeta(want)+`$`, string(read(t, "Makefile")))
	assert.Regexp(t, `(?m)^export GOTOOLCHAIN=go`+regexp.QuoteMeta(want)+`$`, string(read(t, ".ci/run")))
	assert.Regexp(t, `(?m)^FROM golang:`+regexp.QuoteMeta(want)+`(-\S+)? AS build$`, string(read(t, "Dockerfile")))
	assert.Regexp(t, `(?m)^make vuln$`, string(read(t, ".ci/run")), "CI runs the vulnerability gate")
}

// TestNoBuildOutputCommitted: no binary is committed, and .gitignore keeps
// the build outputs out.
func TestNoBuildOutputCommitted(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the committed files are not checked")
	}
	out, err := exec.Command("git", "-C", root(t), "ls-files", "-z").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): the committed files are not checked", err)
	}
	cmds, err := os.ReadDir(filepath.Join(root(t), "cmd"))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, c := range cmds {
		names[c.Name()] = true
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		assert.False(t, names[f], "%s (a cmd/ binary's name) is committed at the root", f)
		assert.False(t, strings.HasPrefix(f, "bin/"), "%s: bin/ is build output", f)
		if fh, err := os.Open(filepath.Join(root(t), f)); err == nil {
			magic := make([]byte, 4)
			n, _ := fh.Read(magic)
			fh.Close()
			assert.NotEqual(t, "\x7fELF", string(magic[:n]), "%s is an ELF binary", f)
		}
	}
	gi := string(read(t, ".gitignore"))
	assert.Regexp(t, `(?m)^/bin/$`, gi)
	for n := range names {
		assert.Regexp(t, `(?m)^/`+regexp.QuoteMeta(n)+`$`, gi, "a %s built at the root is ignored", n)
	}
}
