package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Exit codes of a report (refresh with a rejected token).
const (
	exitPending = 5 // the wait ended with the refresh still under way or retrying
	exitRefused = 6 // the refresh failed permanently (the API's 422)
)

// reportAnswer is the API's answer to a refresh, a report or its error
// (internal/api Queued, Reported, Refused).
type reportAnswer struct {
	ConnectionID     int64      `json:"connection_id"`
	IntegrationType  string     `json:"integration_type"`
	TaskID           string     `json:"task_id"`
	Status           string     `json:"status"`
	TaskState        string     `json:"task_state"`
	LastAttempt      *attempt   `json:"last_attempt"`
	ExpiresAt        *time.Time `json:"expires_at"`
	ExpiresInSeconds *int64     `json:"expires_in_seconds"`
	Reason           string     `json:"reason"`
	Error            string     `json:"error"`
}

// refreshCmd runs refresh and retry. refresh takes a report of the token
// the marketplace refused, as its SHA-256 or read from stdin and hashed
// here (so the token never sits in a shell history), and a wait. Flags may
// come before or after the id.
func (c client) refreshCmd(ctx context.Context, verb string, args []string, stdin io.Reader, stdout, stderr io.Writer, usage func()) int {
	fs := flag.NewFlagSet("tokenctl "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sum := fs.String("rejected-token-sha256", "", "refresh: lowercase hex SHA-256 of the access token the marketplace refused")
	fromStdin := fs.Bool("rejected-token-stdin", false, "refresh: read the refused access token from stdin and send its SHA-256")
	wait := fs.Duration("wait", 0, "refresh, with a rejected token: wait up to this long (at most 60s) for the new token")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(rest) != 1 {
		usage()
		return exitUsage
	}
	id, err := strconv.ParseInt(rest[0], 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintln(stderr, "tokenctl: the connection id must be a positive whole number")
		return exitUsage
	}
	reported := *sum != "" || *fromStdin
	switch {
	case verb != "refresh" && (reported || *wait != 0):
		fmt.Fprintln(stderr, "tokenctl: --rejected-token-sha256, --rejected-token-stdin and --wait go with refresh only")
		return exitUsage
	case *sum != "" && *fromStdin:
		fmt.Fprintln(stderr, "tokenctl: give --rejected-token-sha256 or --rejected-token-stdin, not both")
		return exitUsage
	case *wait != 0 && !reported:
		fmt.Fprintln(stderr, "tokenctl: --wait needs the rejected token (--rejected-token-sha256 or --rejected-token-stdin)")
		return exitUsage
	case *wait < 0 || *wait > 60*time.Second:
		fmt.Fprintln(stderr, "tokenctl: --wait must be over 0s and at most 60s")
		return exitUsage
	}
	path := "/v1/connections/" + strconv.FormatInt(id, 10) + "/" + verb
	if !reported {
		return c.plainRefresh(ctx, path, stdout, stderr)
	}
	if *fromStdin {
		tok, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
		if err != nil {
			fmt.Fprintln(stderr, "tokenctl: cannot read the rejected token from stdin:", err)
			return exitFailed
		}
		t := bytes.TrimSpace(tok)
		if len(t) == 0 {
			fmt.Fprintln(stderr, "tokenctl: --rejected-token-stdin read no token")
			return exitUsage
		}
		s := sha256.Sum256(t)
		*sum = hex.EncodeToString(s[:])
	}
	if *wait > 0 {
		path += "?wait=" + wait.String()
		// The call lasts as long as the wait, plus the usual deadline.
		c.http.Timeout += *wait
	}
	body, _ := json.Marshal(map[string]string{"rejected_token_sha256": strings.ToLower(*sum)})
	var a reportAnswer
	status, err := c.send(ctx, http.MethodPost, path, body, &a)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitFailed
	}
	expiry := func() string {
		if a.ExpiresAt == nil || a.ExpiresInSeconds == nil {
			return "no token stored"
		}
		return "expires " + stamp(*a.ExpiresAt) + " (" + relative(*a.ExpiresInSeconds) + ")"
	}
	switch status {
	case http.StatusOK:
		fmt.Fprintf(stdout, "connection %d: the row holds a new token (%s); read it from the database\n", id, expiry())
		return exitOK
	case http.StatusAccepted:
		if a.Status != "pending" {
			fmt.Fprintf(stdout, "connection %d: refresh %s as %s\n", id, a.Status, a.TaskID)
			return exitOK
		}
		fmt.Fprintf(stdout, "connection %d: still refreshing when the wait ended (task %s)", id, a.TaskState)
		if a.LastAttempt != nil {
			fmt.Fprintf(stdout, "; last attempt %s %s: %s", stamp(a.LastAttempt.At), a.LastAttempt.Outcome, a.LastAttempt.Reason)
		}
		fmt.Fprintln(stdout)
		return exitPending
	case http.StatusUnprocessableEntity:
		fmt.Fprintln(stderr, "tokenctl:", a.Error)
		return exitRefused
	case http.StatusNotFound:
		fmt.Fprintln(stderr, "tokenctl:", a.Error)
		return exitNotFound
	case http.StatusBadRequest:
		fmt.Fprintln(stderr, "tokenctl:", a.Error)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "tokenctl: HTTP %d: %s\n", status, a.Error)
		return exitFailed
	}
}

func (c client) plainRefresh(ctx context.Context, path string, stdout, stderr io.Writer) int {
	var a reportAnswer
	status, err := c.call(ctx, http.MethodPost, path, &a)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitFailed
	}
	switch status {
	case http.StatusAccepted:
		fmt.Fprintf(stdout, "connection %d (integration type %s): refresh queued as %s\n", a.ConnectionID, a.IntegrationType, a.TaskID)
		return exitOK
	case http.StatusConflict:
		fmt.Fprintln(stdout, "tokenctl:", a.Error)
		return exitConflict
	case http.StatusNotFound:
		fmt.Fprintln(stderr, "tokenctl:", a.Error)
		return exitNotFound
	default:
		fmt.Fprintf(stderr, "tokenctl: HTTP %d: %s\n", status, a.Error)
		return exitFailed
	}
}
