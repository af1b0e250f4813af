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

// refreshArgs are refresh's and retry's id and flags.
type refreshArgs struct {
	id        int64
	sum       string
	fromStdin bool
	wait      time.Duration
}

// parseRefresh reads refresh's and retry's arguments: flags may come
// before or after the id. Its errors say what was wrong.
func parseRefresh(verb string, args []string) (refreshArgs, error) {
	fs := flag.NewFlagSet("tokenctl "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	sum := fs.String("rejected-token-sha256", "", "refresh: lowercase hex SHA-256 of the access token the marketplace refused")
	fromStdin := fs.Bool("rejected-token-stdin", false, "refresh: read the refused access token from stdin and send its SHA-256")
	wait := fs.Duration("wait", 0, "refresh, with a rejected token: wait up to this long (at most 60s) for the new token")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			if f, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
				return refreshArgs{}, fmt.Errorf("%s takes no %s flag (its flags: --rejected-token-sha256, --rejected-token-stdin, --wait; -o is show's and list's)", verb, f)
			}
			return refreshArgs{}, fmt.Errorf("%s: %w", verb, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if err := checkID(verb, rest); err != nil {
		return refreshArgs{}, err
	}
	id, _ := strconv.ParseInt(rest[0], 10, 64)
	reported := *sum != "" || *fromStdin
	switch {
	case verb != "refresh" && (reported || *wait != 0):
		return refreshArgs{}, fmt.Errorf("--rejected-token-sha256, --rejected-token-stdin and --wait go with refresh only")
	case *sum != "" && *fromStdin:
		return refreshArgs{}, fmt.Errorf("give --rejected-token-sha256 or --rejected-token-stdin, not both")
	case *wait != 0 && !reported:
		return refreshArgs{}, fmt.Errorf("--wait needs the rejected token (--rejected-token-sha256 or --rejected-token-stdin)")
	case *wait < 0 || *wait > 60*time.Second:
		return refreshArgs{}, fmt.Errorf("--wait must be over 0s and at most 60s")
	}
	return refreshArgs{id: id, sum: *sum, fromStdin: *fromStdin, wait: *wait}, nil
}

// refreshCmd runs refresh and retry (their arguments checked by
// parseRefresh). refresh takes a report of the token the marketplace
// refused, as its SHA-256 or read from stdin and hashed here (so the token
// never sits in a shell history), and a wait.
func (c client) refreshCmd(ctx context.Context, verb string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ra, err := parseRefresh(verb, args)
	if err != nil {
		fmt.Fprintln(stderr, "tokenctl:", err)
		return exitUsage
	}
	id, sum, fromStdin, wait := ra.id, &ra.sum, &ra.fromStdin, &ra.wait
	reported := *sum != "" || *fromStdin
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
