package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/metrics"
	"github.com/eshopbox/token-refresher/internal/refresh"
	"github.com/eshopbox/token-refresher/internal/scan"
	"github.com/eshopbox/token-refresher/internal/testenv"
)

// root is the repository's top directory.
func root(t *testing.T) string { return testenv.RepoRoot(t) }

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	require.NoError(t, err)
	return b
}

func runTool(t *testing.T, dir, tool string, args ...string) string {
	t.Helper()
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", filepath.Base(tool), strings.Join(args, " "), out)
	return string(out)
}

// metricNames are the series names both binaries export (histograms with
// their _bucket, _sum and _count), read from the real metric definitions.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics.NewScanner(reg).Scanned(scan.Result{IntegrationType: "16"}, nil)
	r := metrics.NewRefresher(reg)
	r.Attempted("ajio", refresh.Refreshed, time.Second, time.Minute, true)
	r.Answered("ajio", 200)
	r.KeptTokenDone("stored")
	metrics.NewCensus(reg).Counted([]census.Count{{IntegrationType: "16", Provider: "ajio"}})
	metrics.NewQueues(reg, emptyInspector{}, "token_refresh")
	metrics.NewBacklogs(reg, []backlog.Named{{IntegrationType: "16", Provider: "ajio", List: emptyBacklog{}}})
	families, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{"up": true} // Prometheus's own, per scrape target
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

type emptyBacklog struct{}

func (emptyBacklog) Forecast(context.Context, time.Time) (backlog.Forecast, error) {
	return backlog.Forecast{}, nil
}

type emptyInspector struct{}

func (emptyInspector) Queues() ([]string, error) { return nil, nil }
func (emptyInspector) GetQueueInfo(q string) (*asynq.QueueInfo, error) {
	return &asynq.QueueInfo{Queue: q}, nil
}

var seriesName = regexp.MustCompile(`\b(token_refresher_[a-z0-9_]+|up)\b`)

// checkExprMetrics asserts an expression names at least one series and
// only series that exist.
func checkExprMetrics(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	found := seriesName.FindAllString(expr, -1)
	assert.NotEmpty(t, found, "%s: %q names no token_refresher series", where, expr)
	for _, n := range found {
		assert.True(t, known[n], "%s: %q is not a metric the binaries export", where, n)
	}
}

func TestPrometheusConfigAndAlertRules(t *testing.T) {
	t.Parallel()
	promtool := testenv.Tool(t, "promtool")
	dir := filepath.Join(root(t), "deploy", "prometheus")
	out := runTool(t, dir, promtool, "check", "config", "prometheus.yml")
	assert.Contains(t, out, "SUCCESS")
	out = runTool(t, dir, promtool, "check", "rules", "alerts.yml")
	assert.Contains(t, out, "SUCCESS")
	out = runTool(t, dir, promtool, "test", "rules", "alerts_test.yml")
	assert.Contains(t, out, "SUCCESS")

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	require.NoError(t, yaml.Unmarshal(read(t, "deploy/prometheus/alerts.yml"), &rules))
	known := metricNames(t)
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkExprMetrics(t, "alert "+r.Alert, r.Expr, known)
		}
	}
	for _, a := range []string{"TokenRefresherExpiredTokens", "TokenRefresherHighFailureRatio", "TokenRefresherQueueLatency"} {
		assert.True(t, alerts[a], "the %s alert the issue asks for", a)
	}

	// Every alert is exercised by the unit tests.
	tested := map[string]bool{}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(read(t, "deploy/prometheus/alerts_test.yml"), &tests))
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				tested[a.Alertname] = true
			}
		}
	}
	for a := range alerts {
		assert.True(t, tested[a], "alert %s never fires in alerts_test.yml", a)
	}
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(read(t, "deploy/grafana/token-refresher.json"), &dash), "the dashboard is JSON")
	require.NotEmpty(t, dash.UID)
	require.NotEmpty(t, dash.Panels)
	known := metricNames(t)
	var exprs []string
	used := map[string]bool{}
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q queries nothing", p.Title)
		for _, tg := range p.Targets {
			checkExprMetrics(t, "panel "+p.Title, tg.Expr, known)
			exprs = append(exprs, tg.Expr)
			for _, n := range seriesName.FindAllString(tg.Expr, -1) {
				used[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
			}
		}
	}
	// Every metric of the list has a panel.
	for _, n := range []string{
		"token_refresher_scans_total", "token_refresher_scan_duration_seconds", "token_refresher_due_connections",
		"token_refresher_scan_tasks_total", "token_refresher_refresh_attempts_total",
		"token_refresher_marketplace_responses_total", "token_refresher_refresh_duration_seconds",
		"token_refresher_token_remaining_seconds_at_refresh", "token_refresher_queue_tasks",
		"token_refresher_queue_latency_seconds", "token_refresher_expired_connections",
	} {
		assert.True(t, used[n], "no panel shows %s", n)
	}

	// The queries are valid PromQL: promtool parses them as recording rules.
	promtool := testenv.Tool(t, "promtool")
	var b strings.Builder
	b.WriteString("groups:\n  - name: grafana\n    rules:\n")
	for i, e := range exprs {
		q, err := json.Marshal(e) // a JSON string is a YAML string
		require.NoError(t, err)
		fmt.Fprintf(&b, "      - record: grafana:panel_query_%d\n        expr: %s\n", i, q)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "grafana.yml"), []byte(b.String()), 0o644))
	out := runTool(t, dir, promtool, "check", "rules", "grafana.yml")
	assert.Contains(t, out, fmt.Sprintf("SUCCESS: %d rules found", len(exprs)))
}
