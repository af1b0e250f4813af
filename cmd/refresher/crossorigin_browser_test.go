package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/sandbox"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// The browser's side of TestCrossOriginRequestsAreRefused, in headless
// Chromium with the operator's basic auth attached to every request: a
// hostile page on another site whose form POSTs "pause" to the dashboard is
// refused and the queue keeps running; clicking Pause and Resume in
// asynqmon's own page works.
func TestDashboardPauseInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser check is left out of -short (make test-short); make test runs it")
	}
	t.Parallel()
	chromium := testenv.Tool(t, "chromium")
	env := testenv.New(t)
	sb := httptest.NewServer(sandbox.New().Handler())
	t.Cleanup(sb.Close)
	r := startRefresher(t, env, sb.URL)
	inspector := asynq.NewInspectorFromRedisClient(env.Redis)
	// The refresh queue exists in asynq's eyes once it has held a task.
	_, err := asynq.NewClientFromRedisClient(env.Redis).Enqueue(asynq.NewTask("parked:test", nil),
		asynq.Queue(env.Queue), asynq.ProcessIn(time.Hour))
	require.NoError(t, err)
	paused := func() bool {
		info, err := inspector.GetQueueInfo(env.Queue)
		require.NoError(t, err)
		return info.Paused
	}

	// The hostile page: on localhost, another site than 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	evil := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><form id="f" method="POST" action="%s/monitoring/api/queues/%s:pause"></form>
<script>document.getElementById("f").submit()</script>`, r.base, env.Queue)
	})}}
	evil.Start()
	t.Cleanup(evil.Close)
	evilURL := fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)

	bctx := openBrowser(t, chromium)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(dashUser+":"+dashPassword))
	require.NoError(t, chromedp.Run(bctx, network.Enable(),
		network.SetExtraHTTPHeaders(network.Headers{"Authorization": auth})), "start Chromium")

	text, _ := showPage(t, bctx, evilURL, "cross-origin request refused")
	assert.Contains(t, text, "the dashboard changes state only from its own pages")
	assert.False(t, paused(), "another site's form paused the queue")

	// asynqmon's home page lists the queues; a row's action buttons show
	// while the mouse is over its last cell, Pause (or Resume) first.
	showPage(t, bctx, r.base+"/monitoring/", env.Queue)
	row := fmt.Sprintf(`//tr[.//a[text()=%q]]`, env.Queue)
	// Move the mouse into the cell's left edge (away from the buttons it
	// will show), then click the first button; before that, out of the
	// table, so each click starts from a fresh hover.
	cellEdge := fmt.Sprintf(`(() => {
		const td = document.evaluate(%q, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
		td.scrollIntoView({block: "center"});
		const r = td.getBoundingClientRect();
		return [r.left + 2, r.top + r.height / 2];
	})()`, row+`/td[last()]`)
	click := func(label string) {
		t.Helper()
		button := row + `/td[last()]//button[1]`
		var at []float64
		require.NoError(t, chromedp.Run(bctx,
			chromedp.ActionFunc(func(ctx context.Context) error {
				return input.DispatchMouseEvent(input.MouseMoved, 1, 1).Do(ctx)
			}),
			chromedp.Evaluate(cellEdge, &at),
			chromedp.ActionFunc(func(ctx context.Context) error {
				return input.DispatchMouseEvent(input.MouseMoved, at[0], at[1]).Do(ctx)
			}),
			chromedp.WaitVisible(button, chromedp.BySearch),
			chromedp.WaitEnabled(button, chromedp.BySearch),
			chromedp.Click(button, chromedp.BySearch),
		), "click %s", label)
	}
	click("Pause")
	testenv.Eventually(t, 30*time.Second, "the queue to be paused by the dashboard's own page", paused)
	click("Resume")
	testenv.Eventually(t, 30*time.Second, "the queue to be resumed by the dashboard's own page", func() bool { return !paused() })
}
