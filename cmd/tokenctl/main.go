// Command tokenctl is the operator's command line for the refresher's API:
//
//	tokenctl refresh <connection id>   refresh one connection now (urgent queue)
//	  [--rejected-token-sha256 HEX | --rejected-token-stdin] [--wait 20s]
//	                                   report the token a marketplace refused
//	tokenctl retry <connection id>     the same, only for a failing connection
//	tokenctl show <connection id>      one connection: state, expiry, tasks, last attempt
//	tokenctl list --state failing      connections in a state (failing, expired, due)
//	tokenctl summary                   connections per provider: fresh, due, expired, failing; rate-limit backlog and tokens at risk
//
// show and list print aligned tables, or the API's JSON with -o json.
//
// It talks to a refresher's /v1/ API (TOKENCTL_URL, API_TOKEN) rather than to
// Redis and MySQL directly: the API owns the checks (active connection,
// refresh already queued or running), operators need no database or Redis
// credentials, and there is one code path to test and audit.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/eshopbox/token-refresher/internal/httpurl"
)

// Exit codes: scripts can tell "already in hand" from a failure.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsage    = 2
	exitConflict = 3 // a refresh of the connection is already queued or running
	exitNotFound = 4 // unknown or inactive connection
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tokenctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // -h prints the usage to stdout; a mistake gets its reason and the short usage
	base := fs.String("url", envOr(getenv, "TOKENCTL_URL", "http://127.0.0.1:8081"), "refresher base URL (TOKENCTL_URL)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline of the call")
	output := fs.String("o", "table", "show and list: table or json (also after the command)")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs)
		return exitOK
	} else if err != nil {
		fmt.Fprintln(stderr, shortUsage)
		return exitUsage
	}
	// What can be checked here is, before API_TOKEN and before the network.
	if err := checkArgs(fs.Args(), *output); err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		fmt.Fprintln(stderr, shortUsage)
		return exitUsage
	}
	tok := strings.TrimSpace(getenv("API_TOKEN"))
	if tok == "" {
		fmt.Fprintln(stderr, "tokenctl: API_TOKEN is not set (the refresher's bearer token)")
		return exitUsage
	}
	u, err := httpurl.Absolute(*base)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl: -url must be an absolute http(s) URL")
		return exitUsage
	}
	c := client{base: strings.TrimRight(u.String(), "/"), token: tok, http: &http.Client{Timeout: *timeout}}

	switch cmd := fs.Arg(0); cmd {
	case "refresh", "retry":
		return c.refreshCmd(ctx, cmd, fs.Args()[1:], stdin, stdout, stderr)
	case "show", "list":
		return c.view(ctx, cmd, fs.Args()[1:], *output, stdout, stderr)
	case "summary":
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, shortUsage)
			return exitUsage
		}
		return c.summary(ctx, stdout, stderr)
	default:
		fmt.Fprintln(stderr, shortUsage)
		return exitUsage
	}
}

type client struct {
	base  string
	token string
	http  *http.Client
}

// call sends one request and decodes a JSON answer into out (any status).
func (c client) call(ctx context.Context, method, path string, out any) (int, error) {
	return c.send(ctx, method, path, nil, out)
}

// send is call with a JSON body (nil: none).
func (c client) send(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// One line naming the setting, as the services' start-up errors
		// do. The base URL is the operator's own setting and holds no
		// token, so it may be quoted.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("cannot reach the refresher at %s (TOKENCTL_URL or -url): %w", c.base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(answer, out); err != nil {
		return resp.StatusCode, fmt.Errorf("HTTP %d with an answer that is not the API's JSON", resp.StatusCode)
	}
	return resp.StatusCode, nil
}

type count struct {
	IntegrationType string `json:"integration_type"`
	Provider        string `json:"provider"`
	Active          int    `json:"active"`
	Fresh           int    `json:"fresh"`
	Due             int    `json:"due"`
	Expired         int    `json:"expired"`
	Failing         int    `json:"failing"`
	ExpiredFailing  int    `json:"expired_failing"`
}

type summary struct {
	At         time.Time `json:"at"`
	Providers  []count   `json:"providers"`
	Backlog    []queued  `json:"backlog"`
	Incomplete bool      `json:"incomplete"`
	Error      string    `json:"error"`
}

// queued is a rate-limited marketplace's backlog (internal/backlog Status).
type queued struct {
	IntegrationType string `json:"integration_type"`
	Waiting         int    `json:"waiting"`
	AtRisk          int    `json:"at_risk"`
}

func (c client) summary(ctx context.Context, stdout, stderr io.Writer) int {
	var s summary
	status, err := c.call(ctx, http.MethodGet, "/v1/connections/summary", &s)
	if err == nil && status != http.StatusOK {
		err = errors.New("HTTP " + strconv.Itoa(status) + ": " + s.Error)
	}
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitFailed
	}
	// WAITING and AT RISK are the backlog of a rate-limited marketplace:
	// due connections waiting for a rate slot, and live tokens that will
	// lapse before their turn at the current pace; "-" without a limit.
	backlog := make(map[string]queued, len(s.Backlog))
	for _, b := range s.Backlog {
		backlog[b.IntegrationType] = b
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "TYPE\tPROVIDER\tACTIVE\tFRESH\tDUE\tEXPIRED\tFAILING\tWAITING\tAT RISK\t")
	for _, p := range s.Providers {
		waiting, atRisk := "-", "-"
		if b, ok := backlog[p.IntegrationType]; ok {
			waiting, atRisk = strconv.Itoa(b.Waiting), strconv.Itoa(b.AtRisk)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", p.IntegrationType, p.Provider, p.Active, p.Fresh, p.Due, p.Expired, p.Failing, waiting, atRisk)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "at %s", s.At.UTC().Format(time.RFC3339))
	if s.Incomplete {
		fmt.Fprint(stdout, " (incomplete: some providers could not be counted)")
	}
	fmt.Fprintln(stdout)
	return exitOK
}

func envOr(getenv func(string) string, name, def string) string {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return v
	}
	return def
}
