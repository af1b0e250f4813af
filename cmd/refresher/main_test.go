package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// Secrets the refresher holds for the test's connections; none may reach a
// page, an API answer or the logs.
const (
	dashUser      = "operator"
	dashPassword  = "dash-pw-do-not-show"
	apiToken      = "api-token-do-not-show-0123456789"
	rejectedUser  = "mallory@sandbox.other"
	rejectedPass  = "mallory-pw-do-not-show"
	malformedPass = "malformed-pw-do-not-show"
	storedToken   = "stored-at-do-not-show"
)

// process is the real binary's run() on this test's databases, queue and
// sandbox, serving HTTP on base.
type process struct {
	env    *testenv.Env
	base   string
	stderr *testenv.Logs
	// stop ends run() and waits for it (also done at the test's cleanup).
	stop func()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func startRefresher(t *testing.T, env *testenv.Env, sandboxURL string, extra ...map[string]string) *process {
	t.Helper()
	addr := freeAddr(t)
	vars := map[string]string{
		"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL,
		"REFRESH_QUEUE": env.Queue, "AJIO_BASE_URL": sandboxURL, "HTTP_ADDR": addr,
		"DASHBOARD_USER": dashUser, "DASHBOARD_PASSWORD": dashPassword, "API_TOKEN": apiToken,
		"REFRESH_CONCURRENCY": "4", "DRAIN_TIMEOUT": "5s", "LOG_LEVEL": "debug",
	}
	for _, m := range extra {
		for k, v := range m {
			vars[k] = v
		}
	}
	r := &process{env: env, base: "http://" + addr, stderr: &testenv.Logs{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return vars[k] }, io.Discard, r.stderr) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				assert.Equal(t, 0, code, "the refresher stops cleanly")
			case <-time.After(30 * time.Second):
				t.Error("the refresher did not stop within 30s")
			}
		})
	}
	t.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("the refresher exited with %d before serving:\n%s", code, r.stderr.String())
		default:
		}
		if resp, err := http.Get(r.base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refresher was not ready within 30s:\n%s", r.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *process) do(t *testing.T, method, path string, auth func(*http.Request)) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, r.base+path, nil)
	require.NoError(t, err)
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func bearer(req *http.Request) { req.Header.Set("Authorization", "Bearer "+apiToken) }

func basic(req *http.Request) { req.SetBasicAuth(dashUser, dashPassword) }

func assertNoSecret(t *testing.T, where, s string) {
	t.Helper()
	for _, secret := range []string{dashPassword, apiToken, rejectedPass, malformedPass, storedToken, rejectedUser} {
		assert.NotContains(t, s, secret, "%s shows a secret", where)
	}
}

// waitArchived waits until the connection's refresh is archived in queue
// with a recorded failure.
func waitArchived(t *testing.T, env *testenv.Env, queue string, id int64) {
	t.Helper()
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)
	testenv.Eventually(t, 60*time.Second, fmt.Sprintf("the refresh of connection %d to be archived", id), func() bool {
		info, err := inspector.GetTaskInfo(queue, task.ID(id))
		return err == nil && info.State == asynq.TaskStateArchived && len(info.Result) > 0
	})
}

// TestDashboardInBrowser is the browser check: the refresher binary's HTTP
// surface, with the embedded dashboard, on real MariaDB and Redis; a
// connection whose credentials the sandbox rejects is refreshed on demand
// through the API and fails; headless Chromium opens /monitoring and finds
// the failed refresh with its reason, and no secret anywhere on the page.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser check is left out of -short (make test-short); make test runs it")
	}
	t.Parallel()
	chromium := testenv.Tool(t, "chromium")
	env := testenv.New(t)
	sb := httptest.NewServer(sandbox.New().Handler())
	t.Cleanup(sb.Close)

	past := time.Now().UTC().Add(-time.Hour)
	env.Insert(t,
		testenv.Row{ID: 18, InputFields: testenv.Str(`{"username":"` + rejectedUser + `","password":"` + rejectedPass + `"}`),
			AccessToken: testenv.Str(storedToken), ExpiresAt: &past},
		testenv.Row{ID: 19, InputFields: testenv.Str(`{"username":"x@itc.com","password":"` + malformedPass + `"`), ExpiresAt: &past},
		testenv.Row{ID: 11, InputFields: testenv.Str(`{"username":"abc@itc.com","password":"abc123"}`), ExpiresAt: &past},
	)
	// Ajio's tokens live a day here, not 30 minutes: the counts below say
	// connection 11 was refreshed once and is fresh, which a wall clock
	// stepped forward mid-run (a CI host resynced by NTP did it once) would
	// otherwise turn into a second, due refresh.
	providers := filepath.Join(t.TempDir(), "providers.yaml")
	require.NoError(t, os.WriteFile(providers, []byte(`providers:
  - integration_type: "16"
    kind: ajio
    base_url: `+sb.URL+`
    token_ttl: 24h
`), 0o600))
	r := startRefresher(t, env, sb.URL, map[string]string{"PROVIDERS_FILE": providers})
	urgent := task.UrgentQueue(env.Queue)

	// The dashboard and the API are behind their own credentials.
	status, _ := r.do(t, http.MethodGet, "/monitoring/", nil)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, _ = r.do(t, http.MethodGet, "/monitoring/", bearer)
	assert.Equal(t, http.StatusUnauthorized, status, "the API token does not open the dashboard")
	status, _ = r.do(t, http.MethodPost, "/v1/connections/18/refresh", basic)
	assert.Equal(t, http.StatusUnauthorized, status, "the dashboard password does not open the API")

	// 18: an on-demand refresh whose credentials are rejected (urgent queue).
	status, body := r.do(t, http.MethodPost, "/v1/connections/18/refresh", bearer)
	require.Equal(t, http.StatusAccepted, status, body)
	assertNoSecret(t, "the API answer", body)
	// 19: a scan's refresh of malformed inputFields (scan queue).
	queued, err := task.NewQueue(env.Redis, env.Queue, time.Minute).Enqueue(context.Background(),
		task.Payload{ConnectionID: 19, IntegrationType: "16", DueExpiry: &past})
	require.NoError(t, err)
	require.True(t, queued)
	// 11: refreshed on demand, for the metrics below.
	status, body = r.do(t, http.MethodPost, "/v1/connections/11/refresh", bearer)
	require.Equal(t, http.StatusAccepted, status, body)

	waitArchived(t, env, urgent, 18)
	waitArchived(t, env, env.Queue, 19)
	testenv.Eventually(t, 60*time.Second, "connection 11 to be refreshed", func() bool {
		return env.Get(t, 11).AccessToken != nil
	})

	status, body = r.do(t, http.MethodGet, "/v1/connections/summary", bearer)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `"integration_type":"16","provider":"ajio","active":3,"fresh":1,"due":0,"expired":2,"failing":2,"expired_failing":2`)
	status, body = r.do(t, http.MethodGet, "/metrics", nil)
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `token_refresher_marketplace_responses_total{code="200",provider="ajio"}`)
	assert.Contains(t, body, `token_refresher_refresh_attempts_total{outcome="permanent",provider="ajio"} 2`)
	assert.Contains(t, body, `token_refresher_refresh_attempts_total{outcome="refreshed",provider="ajio"} 1`)
	assertNoSecret(t, "/metrics", body)

	bctx := openBrowser(t, chromium)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(dashUser+":"+dashPassword))
	require.NoError(t, chromedp.Run(bctx, network.Enable(),
		network.SetExtraHTTPHeaders(network.Headers{"Authorization": auth})), "start Chromium")

	// The urgent queue's archived tasks: the failed on-demand refresh.
	const wantReason = "ajio rejected the credentials"
	text, html := showPage(t, bctx, r.base+"/monitoring/queues/"+urgent+"?status=archived", "connection 18 · type 16", wantReason)
	assert.Contains(t, text, "refresh:18")
	assert.Contains(t, text, "on demand", "the payload says it was an on-demand refresh")
	assertNoSecret(t, "the archived tasks page", text+html)
	var shot []byte
	require.NoError(t, chromedp.Run(bctx, chromedp.CaptureScreenshot(&shot)))
	saveScreenshot(t, shot, "dashboard-failed-refresh.png")

	// The task's own page shows the reason as its last failure (asynqmon
	// shows a task's result only once it completed).
	text, html = showPage(t, bctx, r.base+"/monitoring/queues/"+urgent+"/tasks/refresh:18",
		"Last Failure", wantReason, "connection 18 · type 16")
	assertNoSecret(t, "the task page", text+html)
	assert.NotContains(t, text, "fingerprint")

	// The scan queue's archived tasks: malformed inputFields, named without
	// quoting them.
	text, html = showPage(t, bctx, r.base+"/monitoring/queues/"+env.Queue+"?status=archived", "connection 19 · type 16", "malformed inputFields")
	assertNoSecret(t, "the scan queue's archived tasks page", text+html)

	// The connection view (JSON behind the API's bearer token), as the
	// browser shows it.
	require.NoError(t, chromedp.Run(bctx, network.SetExtraHTTPHeaders(network.Headers{"Authorization": "Bearer " + apiToken})))
	text, html = showPage(t, bctx, r.base+"/v1/connections/18", `"state":"failing"`, wantReason, `"queue":"`+urgent+`","state":"archived"`)
	assertNoSecret(t, "the connection view", text+html)
	assert.NotContains(t, text, storedToken)
}

// openBrowser starts headless Chromium with the flags this machine needs
// (its closed network refuses Chromium's own background connections) and a
// new empty profile; it is closed when the test ends.
func openBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	// Chromium's helper processes may still write to the profile for a moment
	// after the browser exits, so it is removed with retries rather than by
	// t.TempDir's single attempt.
	profile, err := os.MkdirTemp("", "refresher-chromium-")
	require.NoError(t, err)
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := os.RemoveAll(profile)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Logf("could not remove Chromium's profile %s: %v", profile, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1440, 900),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser gracefully, for at most 10s, before the
		// allocator kills what is left.
		ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(ctx)
		cancelBrowser()
		cancelAlloc()
	})
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// showPage opens url and waits until the page's text holds every one of
// want (the SPA renders after its API calls), then returns the text and
// the HTML.
func showPage(t *testing.T, ctx context.Context, url string, want ...string) (string, string) {
	t.Helper()
	cond := make([]string, len(want))
	for i, w := range want {
		q, err := json.Marshal(w)
		require.NoError(t, err)
		cond[i] = "document.body.innerText.includes(" + string(q) + ")"
	}
	var ok bool
	var text, html string
	pctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	err := chromedp.Run(pctx,
		chromedp.Navigate(url),
		chromedp.Poll(strings.Join(cond, " && "), &ok, chromedp.WithPollingInterval(100*time.Millisecond)),
	)
	_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body.innerText`, &text), chromedp.OuterHTML("html", &html))
	require.NoError(t, err, "%s never showed %q; it shows:\n%s", url, want, text)
	return text, html
}

// saveScreenshot checks the capture is a real picture and keeps it: in
// docs/ when UPDATE_DOCS=1 (docs/operations.md shows it), in the test's temporary
// directory otherwise.
func saveScreenshot(t *testing.T, shot []byte, name string) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err, "the screenshot is a PNG")
	b := img.Bounds()
	require.Equal(t, 1440, b.Dx())
	colors := map[uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
		}
	}
	assert.Greater(t, len(colors), 20, "the screenshot shows a rendered page, not a blank one")
	dir := t.TempDir()
	if os.Getenv("UPDATE_DOCS") == "1" {
		dir = filepath.Join(testenv.RepoRoot(t), "docs")
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), shot, 0o644))
	t.Logf("screenshot: %s", filepath.Join(dir, name))
}
