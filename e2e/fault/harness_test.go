// Package fault is the fault-injection suite: each test builds nothing
// in-process but starts the real binaries (scanner, refresher, sandbox,
// built once in TestMain) as processes against real MariaDB and Redis, breaks
// something, and names the condition that must hold.
package fault

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/procs"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// bin holds the paths of the built binaries.
var bin struct{ scanner, refresher, sandbox string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "token-refresher-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault: temp dir:", err)
		os.Exit(1)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", dir+string(os.PathSeparator), "./cmd/scanner", "./cmd/refresher", "./cmd/sandbox")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "fault: building the binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	bin.scanner = filepath.Join(dir, "scanner")
	bin.refresher = filepath.Join(dir, "refresher")
	bin.sandbox = filepath.Join(dir, "sandbox")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a started binary (internal/procs: it dies with the test binary)
// and its output.
type proc struct {
	*procs.Proc
	t    testing.TB
	name string
	out  *testenv.Logs
}

func startProc(t testing.TB, name, path string, env []string, args ...string) *proc {
	t.Helper()
	out := &testenv.Logs{}
	pp, err := procs.Start(name, path, args,
		append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...), out)
	require.NoError(t, err, "start %s", name)
	p := &proc{Proc: pp, t: t, name: name, out: out}
	t.Cleanup(func() {
		if p.running() {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("--- %s output (last 60 lines) ---\n%s", name, tail(out.String(), 60))
		}
	})
	return p
}

func tail(s string, n int) string { return procs.LastLines(s, n) }

func (p *proc) running() bool { return p.Running() }

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() { p.Kill() }

// exit waits up to timeout for the process to end and returns its exit code.
func (p *proc) exit(timeout time.Duration) int {
	p.t.Helper()
	if !p.WaitFor(timeout) {
		p.t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	return p.Cmd.ProcessState.ExitCode()
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.Signal(sig))
}

// waitLog waits until the output holds substr.
func (p *proc) waitLog(timeout time.Duration, substr string) {
	p.t.Helper()
	eventually(p.t, timeout, fmt.Sprintf("%s to log %q", p.name, substr), func() bool {
		if !p.running() && !strings.Contains(p.out.String(), substr) {
			p.t.Fatalf("%s exited (%v) before logging %q", p.name, p.Err(), substr)
		}
		return strings.Contains(p.out.String(), substr)
	})
}

// linesWith returns the output lines holding substr.
func (p *proc) linesWith(substr string) []string {
	var out []string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// count is how many output lines hold substr.
func (p *proc) count(substr string) int {
	return strings.Count(p.out.String(), substr)
}

// eventually polls cond every 100ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// marketplace is a sandbox process and its control API.
type marketplace struct {
	*proc
	url string
}

func startSandbox(t testing.TB) *marketplace {
	t.Helper()
	p := startProc(t, "sandbox", bin.sandbox, []string{"LOG_FORMAT=json"}, "--addr", "127.0.0.1:0")
	p.waitLog(20*time.Second, "sandbox marketplace ready")
	var url string
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		var line struct {
			Msg     string `json:"msg"`
			BaseURL string `json:"base_url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.BaseURL != "" {
			url = line.BaseURL
		}
	}
	require.NotEmpty(t, url, "the sandbox logs its base URL")
	return &marketplace{proc: p, url: url}
}

var control = &http.Client{Timeout: 10 * time.Second}

func (m *marketplace) do(method, path string, in, out any) {
	m.t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		require.NoError(m.t, err)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.url+path, body)
	require.NoError(m.t, err)
	resp, err := control.Do(req)
	require.NoError(m.t, err)
	defer resp.Body.Close()
	require.Less(m.t, resp.StatusCode, 300, "%s %s", method, path)
	if out != nil {
		require.NoError(m.t, json.NewDecoder(resp.Body).Decode(out))
	}
}

func (m *marketplace) setFaults(f sandbox.Faults) { m.do(http.MethodPut, "/_sandbox/faults", f, nil) }

func (m *marketplace) stats() sandbox.Stats {
	var st sandbox.Stats
	m.do(http.MethodGet, "/_sandbox/stats", nil, &st)
	return st
}

func (m *marketplace) calls() map[string]int {
	var c map[string]int
	m.do(http.MethodGet, "/_sandbox/calls", nil, &c)
	return c
}

func (m *marketplace) owners(tokens []string) map[string]string {
	var o map[string]string
	m.do(http.MethodPost, "/_sandbox/owners", tokens, &o)
	return o
}

// shares are the parts of all calls each fault answers.
type shares struct{ hang, slow, tooMany, errors, html, garbage float64 }

// faults turns shares into the sandbox's switches. The sandbox draws them in
// the order hang, slow, 429, error, HTML, garbage, so each later draw is
// conditioned on the earlier ones missing. Slow answers come after 3s, past
// every test's call timeout; 429s ask for Retry-After seconds.
func faults(sh shares, retryAfter int) sandbox.Faults {
	left := 1.0
	cond := func(p float64) float64 {
		r := p / left
		left -= p
		return r
	}
	return sandbox.Faults{
		HangRate:          cond(sh.hang),
		SlowRate:          cond(sh.slow),
		SlowLatency:       3 * time.Second,
		RateLimitRate:     cond(sh.tooMany),
		RetryAfterSeconds: retryAfter,
		ErrorRate:         cond(sh.errors),
		HTMLRate:          cond(sh.html),
		GarbageRate:       cond(sh.garbage),
	}
}

// mix spreads a total fault rate p evenly over 500s, 429s with Retry-After,
// answers slower than the caller's timeout and hangs.
func mix(p float64, retryAfter int) sandbox.Faults {
	return faults(shares{hang: p / 4, slow: p / 4, tooMany: p / 4, errors: p / 4}, retryAfter)
}

// kind is one provider in a test's providers file.
type kind struct {
	IntegrationType string
	Kind            string
	TokenTTL        time.Duration
	RefreshBefore   time.Duration
	Timeout         time.Duration
	RatePerSecond   float64
}

// system is one test's world: its databases and queue, a sandbox, and the
// settings the binaries get.
type system struct {
	t        testing.TB
	env      *testenv.Env
	market   *marketplace
	dir      string
	redisURL string
	ieDSN    string // what the refresher uses for database B (a proxy's, when set)
	kinds    []kind
}

func newSystem(t testing.TB, kinds ...kind) *system {
	t.Helper()
	if len(kinds) == 0 {
		kinds = []kind{{IntegrationType: "16", Kind: "ajio"}}
	}
	s := &system{t: t, env: testenv.New(t), market: startSandbox(t), dir: t.TempDir(), kinds: kinds}
	s.redisURL = s.env.RedisURL
	s.ieDSN = s.env.IEDSN
	t.Cleanup(func() {
		// The rate limiter's keys live beside asynq's.
		ctx := context.Background()
		keys, _ := s.env.Redis.Keys(ctx, "rate:token-refresher:{"+s.env.Queue+"}:*").Result()
		if len(keys) > 0 {
			s.env.Redis.Del(ctx, keys...)
		}
	})
	return s
}

// providersFile writes the providers file of kinds and returns its path.
func (s *system) providersFile(name string, kinds []kind) string {
	s.t.Helper()
	var b strings.Builder
	b.WriteString("providers:\n")
	for _, k := range kinds {
		fmt.Fprintf(&b, "  - integration_type: %q\n    kind: %s\n", k.IntegrationType, k.Kind)
		switch k.Kind {
		case "oauth2_refresh":
			fmt.Fprintf(&b, "    token_url: %s/oauth/token\n", s.market.url)
		default:
			fmt.Fprintf(&b, "    base_url: %s\n", s.market.url)
		}
		if k.TokenTTL > 0 {
			fmt.Fprintf(&b, "    token_ttl: %s\n", k.TokenTTL)
		}
		if k.RefreshBefore > 0 {
			fmt.Fprintf(&b, "    refresh_before: %s\n", k.RefreshBefore)
		}
		if k.Timeout > 0 {
			fmt.Fprintf(&b, "    timeout: %s\n", k.Timeout)
		}
		if k.RatePerSecond > 0 {
			fmt.Fprintf(&b, "    rate_limit_per_second: %g\n", k.RatePerSecond)
		}
	}
	// Written aside and renamed into place: a process started a moment ago
	// may be reading the file, and must never see it truncated (empty).
	path := filepath.Join(s.dir, name)
	tmp, err := os.CreateTemp(s.dir, name+".*")
	require.NoError(s.t, err)
	_, err = tmp.WriteString(b.String())
	require.NoError(s.t, err)
	require.NoError(s.t, tmp.Close())
	require.NoError(s.t, os.Rename(tmp.Name(), path))
	return path
}

func (s *system) common(providersFile string) []string {
	return []string{
		"WMS_DB_DSN=" + s.env.WMSDSN,
		"REDIS_URL=" + s.redisURL,
		"PROVIDERS_FILE=" + providersFile,
		"REFRESH_QUEUE=" + s.env.Queue,
		"LOG_FORMAT=json",
		"LOG_LEVEL=info",
		"REFRESH_TIMEOUT=30s",
	}
}

// startRefresher starts a refresher (test defaults: 10 workers, retries
// within 250ms at first and capped at 2s, checked every 250ms, breaker of 5
// failures and 2s) and waits until it works.
func (s *system) startRefresher(extra ...string) *proc {
	s.t.Helper()
	env := append(s.common(s.providersFile("providers.yaml", s.kinds)),
		"IE_DB_DSN="+s.ieDSN,
		"REFRESH_CONCURRENCY=10",
		"RETRY_BASE_DELAY=250ms",
		"RETRY_MAX_DELAY=2s",
		"RETRY_CHECK_INTERVAL=250ms",
		"BREAKER_FAILURES=5",
		"BREAKER_COOLDOWN=2s",
		"DRAIN_TIMEOUT=5s",
	)
	p := startProc(s.t, "refresher", bin.refresher, append(env, extra...))
	p.waitLog(30*time.Second, "refresher started")
	return p
}

// startScanner starts a scanner loop (every second; cooldown 1h) and waits
// for its first scan.
func (s *system) startScanner(extra ...string) *proc {
	s.t.Helper()
	p := s.launchScanner(extra...)
	p.waitLog(30*time.Second, `"msg":"scanned"`)
	return p
}

// launchScanner starts a scanner loop without waiting for it.
func (s *system) launchScanner(extra ...string) *proc {
	s.t.Helper()
	env := append(s.common(s.providersFile("providers.yaml", s.kinds)),
		"IE_DB_DSN="+s.env.IEDSN, "SCAN_INTERVAL=1s", "FAILURE_COOLDOWN=1h")
	return startProc(s.t, "scanner", bin.scanner, append(env, extra...))
}

// scanTotals sums a scanner's logged scan results.
func scanTotals(p *proc) (scans, enqueued, alreadyQueued, retried int) {
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	for sc.Scan() {
		var l struct {
			Msg           string `json:"msg"`
			Enqueued      int    `json:"enqueued"`
			AlreadyQueued int    `json:"already_queued"`
			Retried       int    `json:"retried"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "scanned" {
			scans++
			enqueued += l.Enqueued
			alreadyQueued += l.AlreadyQueued
			retried += l.Retried
		}
	}
	return
}

// scanOnce runs scanner --once and requires it to succeed.
func (s *system) scanOnce(extra ...string) {
	s.t.Helper()
	env := append(s.common(s.providersFile("providers.yaml", s.kinds)), "IE_DB_DSN="+s.env.IEDSN)
	p := startProc(s.t, "scanner --once", bin.scanner, append(env, extra...), "--once")
	require.Equal(s.t, 0, p.exit(60*time.Second), "scanner --once: %s", p.out.String())
}

func (s *system) queue() *task.Queue { return task.NewQueue(s.env.Redis, s.env.Queue, time.Minute) }

// seller returns a generated sandbox seller and its password.
func seller(name string) (string, string) {
	u := name + sandbox.GeneratedDomain
	return u, sandbox.Password(u)
}

func creds(user, pass string) *string {
	return testenv.Str(`{"username":"` + user + `","password":"` + pass + `"}`)
}

// conns seeds n due (expired) ajio connections with ids from first, and
// returns their sellers by id.
func (s *system) conns(first int64, n int, integrationType string) map[int64]string {
	s.t.Helper()
	expired := time.Now().UTC().Add(-time.Hour)
	users := make(map[int64]string, n)
	var rows []testenv.Row
	for i := range int64(n) {
		id := first + i
		u, p := seller(fmt.Sprintf("s%d-%s", id, s.env.Queue))
		users[id] = u
		rows = append(rows, testenv.Row{ID: id, IntegrationType: integrationType, InputFields: creds(u, p),
			ExpiresAt: &expired, AccessToken: testenv.Str(fmt.Sprintf("old-%d", id)), RefreshToken: testenv.Str(fmt.Sprintf("old-rt-%d", id))})
	}
	s.env.Insert(s.t, rows...)
	return users
}

// row is what the tests read back of a connection.
type row struct {
	ID          int64      `db:"id"`
	AccessToken *string    `db:"accessToken"`
	ExpiresAt   *time.Time `db:"accessTokenExpiryAt"`
}

func (s *system) rows() map[int64]row {
	s.t.Helper()
	var rs []row
	require.NoError(s.t, s.env.IE.Select(&rs, `SELECT id, accessToken, accessTokenExpiryAt FROM ie_appinstall_connection`))
	out := make(map[int64]row, len(rs))
	for _, r := range rs {
		out[r.ID] = r
	}
	return out
}

// refreshed counts the connections of users whose stored token is one the
// sandbox issued to that connection's seller and is not expired.
func (s *system) refreshed(users map[int64]string) int {
	s.t.Helper()
	rows := s.rows()
	var tokens []string
	for id := range users {
		if r := rows[id]; r.AccessToken != nil {
			tokens = append(tokens, *r.AccessToken)
		}
	}
	owners := s.market.owners(tokens)
	now := time.Now()
	n := 0
	for id, u := range users {
		r := rows[id]
		if r.AccessToken != nil && owners[*r.AccessToken] == u && r.ExpiresAt != nil && r.ExpiresAt.After(now) {
			n++
		}
	}
	return n
}

// requireTokens checks every connection of users holds a live token the
// sandbox issued to its own seller: never an empty or a wrong one.
func (s *system) requireTokens(users map[int64]string) {
	s.t.Helper()
	rows := s.rows()
	var tokens []string
	for id := range users {
		r := rows[id]
		require.NotNil(s.t, r.AccessToken, "connection %d has a token", id)
		require.NotEmpty(s.t, *r.AccessToken, "connection %d has a token", id)
		tokens = append(tokens, *r.AccessToken)
	}
	owners := s.market.owners(tokens)
	for id, u := range users {
		r := rows[id]
		require.Equal(s.t, u, owners[*r.AccessToken], "connection %d holds a token issued to its own seller", id)
		require.NotNil(s.t, r.ExpiresAt)
		require.True(s.t, r.ExpiresAt.After(time.Now()), "connection %d's token is live", id)
	}
}

// figure logs a measured result in the form docs/reliability.md quotes.
func figure(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURE %s: "+format, append([]any{t.Name()}, args...)...)
}
