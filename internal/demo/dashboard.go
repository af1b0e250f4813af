package demo

import (
	"encoding/json"
	"html/template"
	"net/http"
	"time"
)

// dashboardPage is the demo's front page: every demo connection with its
// state and, for a failure, its reason; asynqmon is one click away.
var dashboardPage = template.Must(template.New("demo").Funcs(template.FuncMap{
	"clock": clock,
	"when": func(t *time.Time) string {
		if t == nil {
			return "never generated"
		}
		return t.UTC().Format("15:04:05 UTC")
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
<p>{{.Status.Line}}</p>
<p>Queue internals, retries and archived failures: <a href="/monitoring/">asynqmon at /monitoring</a>.
Status as JSON: <a href="/api/status">/api/status</a>. Metrics: <a href="/metrics">/metrics</a>.</p>
<table>
<tr><th>connection</th><th>provider</th><th>type</th><th>state</th><th>token expires</th><th>refreshes</th><th>what it shows</th><th>reason</th></tr>
{{range .Status.Connections}}<tr>
<td>{{.ID}}</td><td>{{.Kind}}</td><td>{{.IntegrationType}}</td><td class="{{.State}}">{{.State}}</td>
<td>{{when .ExpiresAt}}</td><td>{{.Refreshes}}</td><td>{{.Note}}</td><td>{{.Reason}}</td>
</tr>{{end}}
</table>
</body></html>
`))

// dashboard serves the demo page and its JSON twin; asynqmon and the
// operational endpoints are mounted beside it by Run.
func dashboard(mux *http.ServeMux, status func() Status) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := dashboardPage.Execute(w, struct{ Status Status }{status()}); err != nil {
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
