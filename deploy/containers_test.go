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
	for _, name := range []string{"sandbox", "scanner", "refresher", "asynqmon"} {
		svc := c.Services[name]
		assert.NotNil(t, svc.Build, "%s is built from the Dockerfile", name)
		require.Len(t, svc.Command, 1, name)
		bin := svc.Command[0]
		_, err := os.Stat(filepath.Join(root(t), "cmd", bin, "main.go"))
		assert.NoError(t, err, "%s runs cmd/%s", name, bin)
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
	_, err := config.LoadScanner(env("scanner"))
	assert.NoError(t, err, "the scanner's compose environment")
	r, err := config.LoadRefresher(env("refresher"))
	require.NoError(t, err, "the refresher's compose environment")
	assert.NotEmpty(t, r.APIToken)
	assert.NotEmpty(t, r.DashboardUser)
	_, err = config.LoadDashboard(env("asynqmon"))
	assert.NoError(t, err, "the dashboard's compose environment")
	grace, err := time.ParseDuration(c.Services["refresher"].StopGracePeriod)
	require.NoError(t, err, "the refresher has a stop_grace_period")
	assert.GreaterOrEqual(t, grace, r.DrainTimeout+5*time.Second, "docker stop waits for the drain")
}

// TestDockerfile checks the Dockerfile's shape and builds the binaries the
// way its build stage does, asserting they are static. What it cannot
// check here (no engine): `docker build` itself and the base images.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	df := string(read(t, "Dockerfile"))
	from := regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(df, -1)
	require.GreaterOrEqual(t, len(from), 2, "a multi-stage build")
	final := from[len(from)-1][1]
	assert.True(t, strings.HasPrefix(final, "gcr.io/distroless/static") && strings.HasSuffix(final, ":nonroot") || final == "scratch",
		"the run stage is distroless static nonroot or scratch, not %s", final)
	assert.Regexp(t, `(?m)^USER\s+(nonroot|65532)`, df, "runs as a non-root user")
	assert.Contains(t, df, "CGO_ENABLED=0")
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build .*)$`).FindStringSubmatch(df)
	require.NotNil(t, build, "the build stage's go build line")

	// Build like the Dockerfile does and check every binary is static.
	if testing.Short() {
		t.Skip("the static build of every binary is left out of -short (make test-short); make test runs it")
	}
	out := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out+string(os.PathSeparator), "./cmd/...")
	cmd.Dir = root(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", b)
	bins, err := os.ReadDir(out)
	require.NoError(t, err)
	cmds, err := os.ReadDir(filepath.Join(root(t), "cmd"))
	require.NoError(t, err)
	require.Len(t, bins, len(cmds), "one binary per cmd/")
	for _, e := range bins {
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
}
