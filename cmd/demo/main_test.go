package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/demo"
	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// dials records every address this test binary dials for MySQL (the
// driver's dialer for "tcp" is replaced process-wide) and for Redis (the
// demo's Dial hook), so the tests can say what the demo connected to.
var dials = struct {
	once  sync.Once
	mu    sync.Mutex
	addrs []string
}{}

func recordDial(ctx context.Context, network, addr string) (net.Conn, error) {
	dials.mu.Lock()
	dials.addrs = append(dials.addrs, addr)
	dials.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func watchDials() {
	dials.once.Do(func() {
		driver.RegisterDialContext("tcp", func(ctx context.Context, addr string) (net.Conn, error) {
			return recordDial(ctx, "tcp", addr)
		})
	})
}

func dialed() []string {
	dials.mu.Lock()
	defer dials.mu.Unlock()
	return append([]string(nil), dials.addrs...)
}

// running is one in-process run of the demo command.
type running struct {
	out    *testenv.Logs
	ep     demo.Endpoints
	cancel context.CancelFunc
	done   chan struct{} // closed when run returned; code is then set
	code   int
	logs   string
}

// start runs the demo command as `make demo` would, with env as its
// environment, until stop (Ctrl-C) or the test's end.
func start(t *testing.T, env map[string]string, args ...string) *running {
	t.Helper()
	watchDials()
	logs := filepath.Join(t.TempDir(), "demo.log")
	r := &running{out: &testenv.Logs{}, done: make(chan struct{}), logs: logs}
	ready := make(chan demo.Endpoints, 1)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	args = append([]string{"--addr", "127.0.0.1:0", "--plain", "--latency", "20ms", "--log-file", logs}, args...)
	go func() {
		defer close(r.done)
		r.code = run(ctx, args, func(k string) string { return env[k] }, r.out, r.out, func(c *demo.Config) {
			c.Dial = recordDial
			c.PlainEvery = 200 * time.Millisecond
			c.Ready = func(ep demo.Endpoints) { ready <- ep }
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case r.ep = <-ready:
	case <-r.done:
		t.Fatalf("demo exited with %d before it served:\n%s", r.code, r.out.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("demo not ready after 60s:\n%s", r.out.String())
	}
	return r
}

// stop is Ctrl-C: the demo drains, prints its summary and exits 0.
func (r *running) stop(t *testing.T) string {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.Equal(t, 0, r.code, "demo exit code; output:\n%s", r.out.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("demo did not stop within 30s of Ctrl-C:\n%s", r.out.String())
	}
	return r.out.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	require.NoError(t, err, "GET %s", url)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// demoRow is a demo connection with its provider kind.
type demoRow struct {
	demo.Row
	kind string
}

// demoRows are the demo's connections by id, and the secrets they carry
// (passwords, client secrets, refresh tokens).
func demoRows() (map[int64]demoRow, []string) {
	rows := map[int64]demoRow{}
	var secrets []string
	for _, k := range demo.Kinds() {
		kind := k.Entry("http://127.0.0.1:1", demo.DefaultTiming()).Kind
		for _, r := range k.Rows(demo.DefaultTiming()) {
			rows[r.ID] = demoRow{Row: r, kind: kind}
			var f struct {
				Password     string `json:"password"`
				ClientSecret string `json:"client_secret"`
			}
			if json.Unmarshal([]byte(r.InputFields), &f) == nil {
				secrets = append(secrets, f.Password, f.ClientSecret)
			}
			secrets = append(secrets, r.RefreshToken)
		}
	}
	for _, p := range sandbox.SeedSellers {
		secrets = append(secrets, p)
	}
	return rows, slices.DeleteFunc(secrets, func(s string) bool { return len(s) < 6 })
}

// tokenPrefix is how the sandbox starts the access tokens of each kind.
var tokenPrefix = map[string]string{"ajio": "ajio-at-", "oauth2_refresh": "oauth-at-", "unicommerce": "uc-at-"}

type stored struct {
	ID           int64      `db:"id"`
	AccessToken  *string    `db:"accessToken"`
	RefreshToken *string    `db:"refreshToken"`
	ExpiresAt    *time.Time `db:"accessTokenExpiryAt"`
}

func readRows(t *testing.T, db *sqlx.DB) map[int64]stored {
	t.Helper()
	var rows []stored
	require.NoError(t, db.Select(&rows, `SELECT id, accessToken, refreshToken, accessTokenExpiryAt FROM ie_appinstall_connection`))
	out := map[int64]stored{}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out
}

// TestDemoEndToEnd runs `make demo` in-process with no server settings: the
// due tokens (due now and the second wave) are refreshed in the embedded
// MySQL, the rejected and malformed connections are shown as failed with
// their reasons, the dashboard and asynqmon answer, Ctrl-C prints the
// summary, and no password or token appears in anything the demo shows or
// logs. Every address it dialed is one of its embedded servers.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	r := start(t, nil, "--second-wave", "2s")
	require.NotEmpty(t, r.ep.MySQL, "embedded MySQL")
	require.NotEmpty(t, r.ep.Redis, "embedded Redis")

	ie := sqlx.MustOpen("mysql", r.ep.IEDSN)
	t.Cleanup(func() { ie.Close() })
	rows, secrets := demoRows()
	testenv.Eventually(t, 60*time.Second, "every valid seller's token, the second wave's too, to be refreshed", func() bool {
		got := readRows(t, ie)
		for id, row := range rows {
			if row.Want != demo.WantRefreshed {
				continue
			}
			s := got[id]
			if s.AccessToken == nil || s.ExpiresAt == nil || !s.ExpiresAt.After(time.Now()) {
				return false
			}
		}
		return true
	})
	got := readRows(t, ie)
	var tokens []string
	for id, row := range rows {
		s, ok := got[id]
		require.True(t, ok, "connection %d seeded", id)
		if row.Want == demo.WantRefreshed {
			assert.True(t, strings.HasPrefix(*s.AccessToken, tokenPrefix[row.kind]), "connection %d holds a sandbox %s token", id, row.kind)
			tokens = append(tokens, *s.AccessToken)
			if s.RefreshToken != nil {
				tokens = append(tokens, *s.RefreshToken)
			}
			if row.kind == "oauth2_refresh" {
				// The sandbox rotates OAuth refresh tokens: the new one is
				// stored with the access token.
				require.NotNil(t, s.RefreshToken, "connection %d", id)
				assert.NotEqual(t, row.RefreshToken, *s.RefreshToken, "connection %d stored the rotated refresh token", id)
			}
		} else {
			assert.Nil(t, s.AccessToken, "connection %d (%s) got no token", id, row.Want)
		}
	}

	// The dashboard and its JSON twin show the failures with their reasons.
	var st demo.Status
	// (and no refresh still running: on a loaded machine a second wave's
	// refresh may still be in flight when the last failure shows)
	// A second-wave row already holds a live token before its refresh, so
	// the rows above can look done while one of them is due and not yet
	// taken: wait for every wanted connection to show fresh too.
	testenv.Eventually(t, 30*time.Second, "the ten failures, and every other connection fresh, on the status page", func() bool {
		code, body := get(t, r.ep.Dashboard+"api/status")
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		if st.Failed != 10 || st.Refreshing != 0 {
			return false
		}
		for _, c := range st.Connections {
			if row, ok := rows[c.ID]; ok && row.Want == demo.WantRefreshed && (c.State != demo.StateFresh || c.Refreshes == 0) {
				return false
			}
		}
		return true
	})
	byID := map[int64]demo.Connection{}
	for _, c := range st.Connections {
		byID[c.ID] = c
	}
	for id, row := range rows {
		c := byID[id]
		switch row.Want {
		case demo.WantRejected:
			assert.Equal(t, demo.StateFailed, c.State, "connection %d", id)
			assert.Regexp(t, `^permanent: .*(rejected the credentials|invalid_grant|invalid_client)`, c.Reason, "connection %d", id)
		case demo.WantMalformed:
			assert.Equal(t, demo.StateFailed, c.State, "connection %d", id)
			assert.Contains(t, c.Reason, "malformed inputFields", "connection %d", id)
		default:
			assert.Equal(t, demo.StateFresh, c.State, "connection %d", id)
			assert.Positive(t, c.Refreshes, "connection %d", id)
		}
	}
	code, page := get(t, r.ep.Dashboard)
	assert.Equal(t, http.StatusOK, code, "dashboard")
	assert.Contains(t, page, "ajio rejected the credentials")
	assert.Contains(t, page, "/monitoring/")
	code, mon := get(t, r.ep.Dashboard+"monitoring/")
	assert.Equal(t, http.StatusOK, code, "asynqmon")
	assert.Contains(t, mon, "<html")
	code, queues := get(t, r.ep.Dashboard+"monitoring/api/queues")
	assert.Equal(t, http.StatusOK, code, "asynqmon API on miniredis")
	assert.Contains(t, queues, `"archived":10`)
	code, archived := get(t, r.ep.Dashboard+"monitoring/api/queues/token_refresh/archived_tasks")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, archived, "rejected the credentials", "asynqmon shows the failure's reason")
	// Another site's page cannot pause the demo's queue.
	req, err := http.NewRequest(http.MethodPost, r.ep.Dashboard+"monitoring/api/queues/token_refresh:pause", nil)
	require.NoError(t, err)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a cross-site pause is refused")
	_, queues = get(t, r.ep.Dashboard+"monitoring/api/queues")
	assert.Contains(t, queues, `"paused":false`)

	testenv.Eventually(t, 10*time.Second, "a progress line counting every refresh", func() bool {
		// 35 connections refreshed; the one with short tokens (4250) may
		// have been refreshed again on its own clock.
		return regexp.MustCompile(`refreshed (3[5-9]|[4-9]\d)  failed 10`).MatchString(r.out.String())
	})
	testenv.Eventually(t, 30*time.Second, "a webhook event per failed connection (Lua on miniredis)", func() bool {
		return strings.Count(r.out.String(), "webhook received: connection.failed") == 10
	})
	out := r.stop(t)
	assert.Contains(t, out, "webhook received: connection.failed for connection 4290 (oauth2_refresh), signature verified")
	assert.Contains(t, out, "dashboard  "+r.ep.Dashboard)
	assert.Contains(t, out, "came due")
	for _, line := range []string{
		"failed: connection 1690 (ajio, integration type 16): permanent: ajio rejected the credentials",
		"failed: connection 1691 (ajio, integration type 16): permanent: malformed inputFields",
		"failed: connection 4290 (oauth2_refresh, integration type 42): permanent: oauth2 token endpoint refused the refresh: invalid_grant",
		"failed: connection 4291 (oauth2_refresh, integration type 42): permanent: malformed inputFields",
		"failed: connection 4390 (unicommerce, integration type 43): permanent: unicommerce rejected the credentials",
		"failed: connection 4391 (unicommerce, integration type 43): permanent: malformed inputFields",
		"failed: connection 6190 (http_token, integration type 61): permanent: shopzone rejected the credentials (response.rejected[0]: error.code BAD_LOGIN",
		"failed: connection 6191 (http_token, integration type 61): permanent: malformed inputFields",
		"failed: connection 5090 (oauth2_client_credentials, integration type 50): permanent: oauth2 token endpoint refused the client_credentials grant: invalid_client",
		"failed: connection 5091 (oauth2_client_credentials, integration type 50): permanent: malformed inputFields",
	} {
		assert.Contains(t, out, line)
	}
	// Every line of the README's sample is one this run printed too, up to
	// the numbers, durations and paths that differ from run to run.
	printed := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		printed[sampleShape(line)] = true
	}
	for _, line := range testenv.Sample(t, "README.md", "`make demo` (here with") {
		assert.True(t, printed[sampleShape(line)], "README's demo sample has a line the demo does not print: %q", line)
	}

	summary := out[strings.LastIndex(out, "Summary after"):]
	assert.Regexp(t, `refreshed: (3[5-9]|[4-9]\d) token\(s\) stored for 35 of 45 connections`, summary)
	assert.Contains(t, summary, "connection 1690 (ajio, integration type 16), failed: permanent: ajio rejected the credentials")
	assert.Contains(t, summary, "failed:    10")
	assert.Contains(t, summary, "still due: 0")

	logs, err := os.ReadFile(r.logs)
	require.NoError(t, err)
	assert.Contains(t, string(logs), `"outcome":"refreshed"`, "the components log to the log file")
	for i, line := range strings.Split(strings.TrimSuffix(string(logs), "\n"), "\n") {
		assert.True(t, json.Valid([]byte(line)), "the log file holds JSON lines only; line %d: %s", i+1, line)
	}
	for _, kind := range []string{"ajio", "oauth2_refresh", "unicommerce", "http_token", "oauth2_client_credentials"} {
		assert.Regexp(t, `refreshed: connection \d+ \(`+kind+`, integration type \d+\): token stored`, out, "the first refresh of each flow gets a line")
	}
	for _, s := range append(secrets, tokens...) {
		for where, text := range map[string]string{"output": out, "dashboard": page, "status": mustJSON(t, st), "logs": string(logs), "asynqmon": archived} {
			assert.NotContains(t, text, s, "a secret in the %s", where)
		}
	}

	for _, a := range dialed() {
		_, port, _ := net.SplitHostPort(a)
		assert.NotContains(t, []string{"3306", "6379"}, port, "dialed %s", a)
	}
	assert.Contains(t, dialed(), r.ep.MySQL)
	assert.Contains(t, dialed(), r.ep.Redis)
}

var (
	logsPath = regexp.MustCompile(`^(  logs +)\S+`)
	duration = regexp.MustCompile(`\b\d+m\d+s\b|\b\d+s\b`)
	number   = regexp.MustCompile(`\d+`)
)

// sampleShape is a line of the demo's output without what changes from run
// to run: the log file's path, durations and numbers (times, ports, ids,
// counts).
func sampleShape(line string) string {
	line = logsPath.ReplaceAllString(line, "${1}PATH")
	line = duration.ReplaceAllString(line, "D")
	return number.ReplaceAllString(line, "N")
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestDemoIgnoresPartialServerSettings: with only some of WMS_DB_DSN,
// IE_DB_DSN and REDIS_URL set (here pointing at listeners that count
// connections, and at the standard ports), the demo says so, runs on its
// embedded engines and never connects to any of them.
func TestDemoIgnoresPartialServerSettings(t *testing.T) {
	t.Parallel()
	var accepted atomic.Int32
	listen := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	wmsAddr, redisAddr := listen(), listen()
	for _, env := range []map[string]string{
		{"WMS_DB_DSN": "root@tcp(" + wmsAddr + ")/eshopbox_wms_production", "REDIS_URL": "redis://" + redisAddr + "/0"},
		{"IE_DB_DSN": "root@tcp(127.0.0.1:3306)/integration_engine_prod", "REDIS_URL": "redis://127.0.0.1:6379/0"},
	} {
		r := start(t, env)
		assert.NotEmpty(t, r.ep.MySQL, "embedded MySQL")
		testenv.Eventually(t, 60*time.Second, "the first refreshes", func() bool {
			_, body := get(t, r.ep.Dashboard+"api/status")
			var st demo.Status
			return json.Unmarshal([]byte(body), &st) == nil && st.Refreshed > 0
		})
		out := r.stop(t)
		assert.Contains(t, out, "not: using the embedded engines (set all three to use real servers)")
		assert.Contains(t, out, "REDIS_URL set but")
	}
	assert.Zero(t, accepted.Load(), "connections to the addresses of the partial settings")
	for _, a := range dialed() {
		assert.NotContains(t, []string{wmsAddr, redisAddr}, a)
		_, port, _ := net.SplitHostPort(a)
		assert.NotContains(t, []string{"3306", "6379"}, port, "dialed %s", a)
	}
}

// TestBinariesLeaveOutEmbeddedEngines builds the scanner and the refresher
// as `make build` does and reads their build info (go version -m): neither
// may carry go-mysql-server or miniredis. The demo's own dependency list is
// the control that the names looked for are the right ones.
func TestBinariesLeaveOutEmbeddedEngines(t *testing.T) {
	t.Parallel()
	engines := []string{"github.com/dolthub/go-mysql-server", "github.com/alicebob/miniredis"}
	const goTool = "go" // the toolchain on PATH, as make build uses

	deps, err := exec.Command(goTool, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "github.com/eshopbox/token-refresher/cmd/demo").CombinedOutput()
	require.NoError(t, err, "%s", deps)
	for _, e := range engines {
		require.Contains(t, string(deps), e, "the demo itself carries %s", e)
	}

	bin := t.TempDir()
	for _, cmd := range []string{"scanner", "refresher"} {
		out, err := exec.Command(goTool, "build", "-trimpath", "-o", filepath.Join(bin, cmd), "github.com/eshopbox/token-refresher/cmd/"+cmd).CombinedOutput()
		require.NoError(t, err, "build %s: %s", cmd, out)
		info, err := exec.Command(goTool, "version", "-m", filepath.Join(bin, cmd)).CombinedOutput()
		require.NoError(t, err, "%s", info)
		require.Contains(t, string(info), "github.com/hibiken/asynq", "build info of %s lists its modules", cmd)
		for _, e := range engines {
			assert.NotContains(t, string(info), e, "bin/%s carries %s", cmd, e)
		}
	}
}
