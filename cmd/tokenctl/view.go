package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// connection is GET /v1/connections/{id} (internal/api Connection).
type connection struct {
	ConnectionID       int64       `json:"connection_id"`
	IntegrationType    string      `json:"integration_type"`
	Provider           string      `json:"provider"`
	Active             bool        `json:"active"`
	State              string      `json:"state"`
	ExpiresAt          *time.Time  `json:"expires_at"`
	ExpiresInSeconds   *int64      `json:"expires_in_seconds"`
	NextRefreshAt      *time.Time  `json:"next_refresh_at"`
	NextRefresh        string      `json:"next_refresh"`
	Tasks              []taskState `json:"tasks"`
	Attempts           int         `json:"attempts"`
	LastAttempt        *attempt    `json:"last_attempt"`
	FailureAgeSeconds  *int64      `json:"failure_fingerprint_age_seconds"`
	CredentialsChanged *bool       `json:"credentials_changed_since_failure"`
	At                 time.Time   `json:"at"`
	Error              string      `json:"error"`
}

type taskState struct {
	Queue         string     `json:"queue"`
	State         string     `json:"state"`
	NextProcessAt *time.Time `json:"next_process_at"`
}

type attempt struct {
	At      time.Time `json:"at"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason"`
}

// listed is one connection of GET /v1/connections (internal/api Listed).
type listed struct {
	ConnectionID    int64      `json:"connection_id"`
	IntegrationType string     `json:"integration_type"`
	Provider        string     `json:"provider"`
	State           string     `json:"state"`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	FailedAt        *time.Time `json:"failed_at,omitempty"`
	Reason          string     `json:"reason,omitempty"`
}

type page struct {
	State       string    `json:"state"`
	Connections []listed  `json:"connections"`
	Next        string    `json:"next"`
	At          time.Time `json:"at"`
	Error       string    `json:"error"`
}

// view runs show and list. Flags may come before or after the arguments
// (tokenctl show 11 -o json).
func (c client) view(ctx context.Context, cmd string, args []string, defaultOutput string, stdout, stderr io.Writer) int {
	// checkArgs has accepted the command line.
	v, err := parseView(cmd, args, defaultOutput, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitUsage
	}
	if cmd == "show" {
		id, _ := strconv.ParseInt(v.args[0], 10, 64)
		return c.show(ctx, id, v.output == "json", stdout, stderr)
	}
	return c.list(ctx, v.state, v.provider, v.output == "json", stdout, stderr)
}

func (c client) show(ctx context.Context, id int64, asJSON bool, stdout, stderr io.Writer) int {
	var raw json.RawMessage
	status, err := c.call(ctx, http.MethodGet, "/v1/connections/"+strconv.FormatInt(id, 10), &raw)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitFailed
	}
	var v connection
	if err := json.Unmarshal(raw, &v); err != nil {
		fmt.Fprintln(stderr, "tokenctl: the API's answer does not parse:", err)
		return exitFailed
	}
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		fmt.Fprintln(stderr, "tokenctl:", v.Error)
		return exitNotFound
	default:
		fmt.Fprintf(stderr, "tokenctl: HTTP %d: %s\n", status, v.Error)
		return exitFailed
	}
	if asJSON {
		return printJSON(stdout, raw)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("CONNECTION", strconv.FormatInt(v.ConnectionID, 10))
	row("TYPE", v.IntegrationType)
	row("PROVIDER", v.Provider)
	row("ACTIVE", yesNo(v.Active))
	row("STATE", v.State)
	expires := "none (no token generated)"
	if v.ExpiresAt != nil && v.ExpiresInSeconds != nil {
		expires = stamp(*v.ExpiresAt) + " (" + relative(*v.ExpiresInSeconds) + ")"
	}
	row("EXPIRES", expires)
	next := "-"
	if v.NextRefreshAt != nil {
		next = stamp(*v.NextRefreshAt)
	}
	row("NEXT REFRESH", next+" ("+v.NextRefresh+")")
	row("ATTEMPTS", strconv.Itoa(v.Attempts))
	last := "none on record"
	if a := v.LastAttempt; a != nil {
		last = stamp(a.At) + " " + a.Outcome + ": " + a.Reason
	}
	row("LAST ATTEMPT", last)
	if v.FailureAgeSeconds != nil {
		age := (time.Duration(*v.FailureAgeSeconds) * time.Second).String()
		if v.CredentialsChanged != nil {
			if *v.CredentialsChanged {
				age += " (credentials changed since)"
			} else {
				age += " (credentials unchanged)"
			}
		}
		row("FAILURE AGE", age)
	}
	row("AT", stamp(v.At))
	tw.Flush()
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tTASK STATE\tNEXT RUN")
	for _, t := range v.Tasks {
		next := "-"
		if t.NextProcessAt != nil {
			next = stamp(*t.NextProcessAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Queue, t.State, next)
	}
	tw.Flush()
	return exitOK
}

// list follows the API's pages to the end.
func (c client) list(ctx context.Context, state, prov string, asJSON bool, stdout, stderr io.Writer) int {
	all := []listed{}
	var at time.Time
	after := ""
	for {
		q := url.Values{"state": {state}}
		if prov != "" {
			q.Set("provider", prov)
		}
		if after != "" {
			q.Set("after", after)
		}
		var p page
		status, err := c.call(ctx, http.MethodGet, "/v1/connections?"+q.Encode(), &p)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("HTTP %d: %s", status, p.Error)
		}
		if err != nil {
			fmt.Fprintln(stderr, "tokenctl:", err)
			if status == http.StatusBadRequest {
				return exitUsage
			}
			return exitFailed
		}
		if at.IsZero() {
			at = p.At
		}
		all = append(all, p.Connections...)
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if asJSON {
		// The API's own object, its pages joined (no cursor: this is all).
		b, _ := json.Marshal(struct {
			State       string    `json:"state"`
			Connections []listed  `json:"connections"`
			At          time.Time `json:"at"`
		}{state, all, at})
		return printJSON(stdout, b)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if state == "failing" {
		fmt.Fprintln(tw, "ID\tTYPE\tPROVIDER\tSTATE\tFAILED AT\tREASON")
	} else {
		fmt.Fprintln(tw, "ID\tTYPE\tPROVIDER\tSTATE\tEXPIRES")
	}
	for _, l := range all {
		if state == "failing" {
			failed := "-"
			if l.FailedAt != nil {
				failed = stamp(*l.FailedAt)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", l.ConnectionID, l.IntegrationType, l.Provider, l.State, failed, l.Reason)
			continue
		}
		exp := "none"
		if l.ExpiresAt != nil {
			exp = stamp(*l.ExpiresAt)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", l.ConnectionID, l.IntegrationType, l.Provider, l.State, exp)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d connection(s) %s at %s\n", len(all), state, stamp(at))
	return exitOK
}

// printJSON prints the API's JSON indented, in the API's order.
func printJSON(w io.Writer, raw []byte) int {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		fmt.Fprintln(w, string(raw))
		return exitOK
	}
	fmt.Fprintln(w, b.String())
	return exitOK
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// relative says "in 4m0s" or "expired 2m0s ago".
func relative(seconds int64) string {
	d := time.Duration(seconds) * time.Second
	if d > 0 {
		return "in " + d.String()
	}
	if d == 0 {
		return "expires now"
	}
	return "expired " + strings.TrimPrefix(d.String(), "-") + " ago"
}
