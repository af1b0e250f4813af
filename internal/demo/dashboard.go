package demo

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// dashboardPage is the demo's front page: every demo connection with its
// state and, for a failure, its reason; asynqmon is one click away.
var dashboardPage = template.Must(template.New("demo").Funcs(template.FuncMap{
	"clock": clock,
	"human": human,
	"when": func(t *time.Time, now time.Time) string {
		if t == nil {
			return "never generated"
		}
		at := t.UTC().Format("15:04:05 UTC")
		if d := t.Sub(now); d >= 0 {
			return at + " (in " + human(d) + ")"
		}
		return at + " (" + human(now.Sub(*t)) + " ago)"
	},
}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>token-refresher demo</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.failed{color:#b00}.retrying{color:#b60}.refreshing{color:#06c}.due{color:#a50}.fresh{color:#080}
code{background:#f4f4f4;padding:0 .3em}
</style></head><body>
<h1>token-refresher demo</h1>
<p>Running for {{human .Status.Elapsed}}: {{.Status.Due}} due (a token to refresh, not failed),
{{.Status.Refreshing}} refreshing, {{.Status.Refreshed}} refreshed, {{.Status.Failed}} failed{{if .Status.NextDueIn}};
the next token comes due in {{human .Status.NextDueIn}}{{end}}.</p>
<p>Queue internals, retries and archived failures: <a href="/monitoring/">asynqmon at /monitoring</a>.
Status as JSON: <a href="/api/status">/api/status</a>. Metrics: <a href="/metrics">/metrics</a>.</p>
<table>
<tr><th>connection</th><th>provider</th><th>type</th><th>state</th><th>token expires</th><th>refreshes</th><th>what it shows</th><th>reason</th></tr>
{{range .Status.Connections}}<tr>
<td>{{.ID}}</td><td>{{.Kind}}</td><td>{{.IntegrationType}}</td><td class="{{.State}}">{{.State}}</td>
<td>{{when .ExpiresAt $.Now}}</td><td>{{.Refreshes}}</td><td>{{.Note}}</td><td>{{.Reason}}</td>
</tr>{{end}}
</table>
</body></html>
`))

// demoPage serves the demo page and its JSON twin; asynqmon and the
// operational endpoints are mounted beside it by Run.
func demoPage(mux *http.ServeMux, status func() Status) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		page := struct {
			Status Status
			Now    time.Time
		}{status(), time.Now()}
		if err := dashboardPage.Execute(w, page); err != nil {
			http.Error(w, "render failed", http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(status()) // a client that hung up is not the demo's problem
	})
}

// human is a duration for people: "45s", "2m 05s", "1h 03m", "2d 4h".
func human(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd %dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}
