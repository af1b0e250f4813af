package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// TestScannerMetrics runs the scanner binary's run() on real MariaDB and
// Redis and reads its /metrics: the scan, the queue sizes and the census of
// token states, with no connection id or secret in any label.
func TestScannerMetrics(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	now := time.Now().UTC()
	past, later := now.Add(-time.Hour), now.Add(time.Hour)
	env.Insert(t,
		testenv.Row{ID: 4711, InputFields: testenv.Str(`{"username":"u@itc.com","password":"pw-do-not-show"}`), ExpiresAt: &past},
		testenv.Row{ID: 4712, InputFields: testenv.Str(`{"username":"v@itc.com","password":"pw-do-not-show"}`), ExpiresAt: &later},
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	vars := map[string]string{
		"WMS_DB_DSN": env.WMSDSN, "IE_DB_DSN": env.IEDSN, "REDIS_URL": env.RedisURL,
		"REFRESH_QUEUE": env.Queue, "HTTP_ADDR": addr, "SCAN_INTERVAL": "1m",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return vars[k] }, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, 0, code)
		case <-time.After(30 * time.Second):
			t.Error("the scanner did not stop within 30s")
		}
	})

	want := []string{
		`token_refresher_scan_tasks_total{integration_type="16",result="enqueued"} 1`,
		`token_refresher_due_connections{integration_type="16"} 1`,
		`token_refresher_queue_tasks{queue="` + env.Queue + `",state="pending"} 1`,
		`token_refresher_queue_info_up{queue="` + env.Queue + `_urgent"} 1`,
		`token_refresher_connections{integration_type="16",provider="ajio",state="fresh"} 1`,
		`token_refresher_expired_failing_connections{integration_type="16",provider="ajio"} 0`,
	}
	var metrics string
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("the scanner exited with %d", code)
		default:
		}
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
			if containsAll(metrics, want) {
				break
			}
		}
		if time.Now().After(deadline) {
			for _, w := range want {
				assert.Contains(t, metrics, w)
			}
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The census ran before or after the scan's enqueue; either way the
	// expired connection was counted (nothing refreshes it in this test).
	assert.Contains(t, metrics, `token_refresher_expired_connections{integration_type="16",provider="ajio"} 1`)
	assert.NotContains(t, metrics, "pw-do-not-show")
	assert.NotContains(t, metrics, "itc.com")
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(metrics))
	require.NoError(t, err)
	for name, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				assert.NotContains(t, []string{"4711", "4712"}, l.GetValue(), "%s has a connection id as a label", name)
			}
		}
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
