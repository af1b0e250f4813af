package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/backlog"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/task"
	"github.com/eshopbox/token-refresher/internal/testenv"
	"github.com/eshopbox/token-refresher/internal/token"
)

const apiToken = "tokenctl-test-token-0123456789"

type store struct{}

func (store) FindActive(_ context.Context, id int64, _ []string) (token.DueConnection, error) {
	if id > 100 {
		return token.DueConnection{}, token.ErrNotFound
	}
	return token.DueConnection{ID: id, IntegrationType: "16"}, nil
}

// failedAt is when the fake connection 11 failed.
// failedAt is set when the package loads; a loaded machine may run a test
// seconds later, so the ages shown are matched to the minute.
var failedAt = time.Now().UTC().Add(-12 * time.Minute).Truncate(time.Second)

func (store) Describe(_ context.Context, id int64, _ []string) (token.Described, error) {
	if id > 100 {
		return token.Described{}, token.ErrNotFound
	}
	exp := failedAt.Add(-time.Hour)
	return token.Described{ID: id, IntegrationType: "16", Active: true, ExpiresAt: &exp}, nil
}

func (store) DuePage(context.Context, string, time.Time, int64) ([]token.DueConnection, *int64, error) {
	return nil, nil, errors.New("not in this fake")
}

func (store) CredentialsChanged(_ context.Context, recorded map[int64]string) (map[int64]bool, error) {
	out := map[int64]bool{}
	for id, fp := range recorded {
		out[id] = fp != "fp-unchanged"
	}
	return out, nil
}

// HoldsToken: connection id's row holds the token "at-<id>".
func (store) HoldsToken(_ context.Context, id int64, sum string) (bool, *time.Time, error) {
	if id > 100 {
		return false, nil, token.ErrNotFound
	}
	exp := time.Now().UTC().Add(time.Hour)
	return sum == sha256Hex("at-"+strconv.FormatInt(id, 10)), &exp, nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

type queue struct{ queued map[int64]bool }

var failure = task.Failure{Reason: "permanent: ajio rejected the credentials (success:false, statusCode 401)",
	Credentials: "fp-unchanged", At: failedAt}

func (*queue) Inspect(_ context.Context, id int64) ([]task.Status, error) {
	if id != 11 {
		return []task.Status{{Queue: "token_refresh", State: task.StateNone}, {Queue: "token_refresh_urgent", State: task.StateNone}}, nil
	}
	f := failure
	return []task.Status{
		{Queue: "token_refresh", State: "archived", LastFailedAt: failedAt, LastErr: f.Reason, Failure: &f},
		{Queue: "token_refresh_urgent", State: task.StateNone},
	}, nil
}

func (*queue) ListArchived() (map[int64]task.Archived, error) {
	f := failure
	return map[int64]task.Archived{
		11: {TaskID: "refresh:11", Queue: "token_refresh", IntegrationType: "16", LastFailedAt: failedAt, Failure: &f},
		99: {TaskID: "refresh:99", Queue: "token_refresh", IntegrationType: "16", LastFailedAt: failedAt, Failure: &f},
	}, nil
}

func (q *queue) EnqueueForced(_ context.Context, p task.Payload) (bool, error) {
	if q.queued[p.ConnectionID] {
		return false, nil
	}
	q.queued[p.ConnectionID] = true
	return true, nil
}

func (q *queue) EnsureForced(_ context.Context, p task.Payload, _ bool) (string, error) {
	if q.queued[p.ConnectionID] {
		return task.Joined, nil
	}
	q.queued[p.ConnectionID] = true
	return task.Queued, nil
}

type counts struct{}

func (counts) Take(context.Context) ([]census.Count, error) {
	return []census.Count{{IntegrationType: "16", Provider: "ajio", Active: 10, Fresh: 7, Due: 2, Expired: 1, Failing: 1, ExpiredFailing: 1}}, nil
}

// server is the real API on fakes: the CLI is tested against the answers
// the refresher really gives.
func server(t *testing.T) *httptest.Server {
	t.Helper()
	a, err := api.New(api.Config{Token: apiToken, Targets: []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}}}, store{}, &queue{queued: map[int64]bool{}}, counts{}, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func tokenctl(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(env["STDIN"]), &out, &errOut)
	for _, s := range []string{out.String(), errOut.String()} {
		assert.NotContains(t, s, apiToken, "the token is never printed")
	}
	return code, out.String(), errOut.String()
}

func TestRefreshCommand(t *testing.T) {
	t.Parallel()
	srv := server(t)
	env := map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": apiToken}

	code, out, _ := tokenctl(t, env, "refresh", "11")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, "connection 11 (integration type 16): refresh queued as refresh:11\n", out)

	code, out, _ = tokenctl(t, env, "refresh", "11")
	assert.Equal(t, exitConflict, code)
	assert.Contains(t, out, "already queued or running")

	code, _, errOut := tokenctl(t, env, "refresh", "404")
	assert.Equal(t, exitNotFound, code)
	assert.Contains(t, errOut, "connection 404 is unknown or not active")

	code, _, errOut = tokenctl(t, map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": "wrong-token-wrong-token"}, "refresh", "12")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, errOut, "HTTP 401")

	code, _, errOut = tokenctl(t, env, "-url", srv.URL+"/", "refresh", "13")
	assert.Equal(t, exitOK, code, errOut)
}

// TestRefreshReport: the stdin form hashes the token here and sends only
// its SHA-256; a replaced token answers at once; the flags are checked.
func TestRefreshReport(t *testing.T) {
	t.Parallel()
	srv := server(t)
	env := map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": apiToken}
	withStdin := func(tok string) map[string]string {
		return map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": apiToken, "STDIN": tok}
	}

	code, out, errOut := tokenctl(t, withStdin("at-12\n"), "refresh", "12", "--rejected-token-stdin")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "connection 12: refresh queued as refresh:12\n", out)
	code, out, errOut = tokenctl(t, env, "refresh", "--rejected-token-sha256", sha256Hex("at-12"), "12")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, "connection 12: refresh joined as refresh:12\n", out)

	code, out, errOut = tokenctl(t, withStdin("at-12-older"), "refresh", "12", "--rejected-token-stdin", "--wait", "5s")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^connection 12: the row holds a new token \(expires \S+Z \(in (59m\d+s|1h0m0s)\)\); read it from the database\n$`, out)
	assert.NotContains(t, out+errOut, "at-12")

	code, _, errOut = tokenctl(t, env, "refresh", "12", "--rejected-token-sha256", "xyz")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "rejected_token_sha256 must be")
	code, _, errOut = tokenctl(t, withStdin("at-404"), "refresh", "404", "--rejected-token-stdin")
	assert.Equal(t, exitNotFound, code)
	assert.Contains(t, errOut, "connection 404 is unknown")

	for _, args := range [][]string{
		{"refresh", "12", "--wait", "5s"},
		{"refresh", "12", "--rejected-token-stdin", "--rejected-token-sha256", sha256Hex("x")},
		{"refresh", "12", "--rejected-token-stdin", "--wait", "2m"},
		{"retry", "12", "--rejected-token-stdin"},
		{"refresh", "12", "13"},
	} {
		code, _, errOut = tokenctl(t, withStdin("at-12"), args...)
		assert.Equal(t, exitUsage, code, "%v", args)
		assert.NotEmpty(t, errOut)
	}
	code, _, errOut = tokenctl(t, withStdin("  \n"), "refresh", "12", "--rejected-token-stdin")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "read no token")

	// 11 failed permanently with its credentials unchanged: refused at once.
	code, _, errOut = tokenctl(t, withStdin("at-11"), "refresh", "11", "--rejected-token-stdin", "--wait", "5s")
	assert.Equal(t, exitRefused, code)
	assert.Contains(t, errOut, "failed permanently: ajio rejected the credentials")
}

func TestSummaryCommand(t *testing.T) {
	t.Parallel()
	srv := server(t)
	code, out, errOut := tokenctl(t, map[string]string{"API_TOKEN": apiToken}, "-url", srv.URL, "summary")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `TYPE\s+PROVIDER\s+ACTIVE\s+FRESH\s+DUE\s+EXPIRED\s+FAILING\s+WAITING\s+AT RISK`, out)
	assert.Regexp(t, `16\s+ajio\s+10\s+7\s+2\s+1\s+1\s+-\s+-`, out, "no rate limit: no backlog")
	assert.Regexp(t, `at \d{4}-\d\d-\d\dT`, out)
}

func TestShowCommand(t *testing.T) {
	t.Parallel()
	srv := server(t)
	env := map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": apiToken}
	code, out, errOut := tokenctl(t, env, "show", "11")
	require.Equal(t, exitOK, code, errOut)
	t.Log("\n" + out)
	for _, re := range []string{
		`(?m)^CONNECTION\s+11$`, `(?m)^PROVIDER\s+ajio$`, `(?m)^STATE\s+failing$`, `(?m)^ACTIVE\s+yes$`,
		`(?m)^EXPIRES\s+\S+Z \(expired 1h12m\d+s ago\)$`,
		`(?m)^LAST ATTEMPT\s+\S+Z permanent: ajio rejected the credentials`,
		`(?m)^FAILURE AGE\s+12m\d+s \(credentials unchanged\)$`, `(?m)^ATTEMPTS\s+1$`,
		`(?m)^token_refresh\s+archived\s+-$`, `(?m)^token_refresh_urgent\s+none\s+-$`,
	} {
		assert.Regexp(t, re, out)
	}
	assert.NotContains(t, out, "fp-unchanged", "never the fingerprint")
	// Columns line up: every value of the first table starts at one column.
	key := regexp.MustCompile(`^[A-Z]+( [A-Z]+)?\s+`)
	lines := strings.Split(out, "\n")
	for _, l := range lines[:10] {
		assert.Len(t, key.FindString(l), len("LAST ATTEMPT  "), "%q", l)
	}

	code, out, errOut = tokenctl(t, env, "show", "11", "-o", "json")
	require.Equal(t, exitOK, code, errOut)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.Equal(t, "failing", v["state"])
	assert.NotContains(t, out, "fp-unchanged")

	code, _, errOut = tokenctl(t, env, "show", "404")
	assert.Equal(t, exitNotFound, code)
	assert.Contains(t, errOut, "connection 404 is unknown")
}

func TestListCommand(t *testing.T) {
	t.Parallel()
	srv := server(t)
	env := map[string]string{"TOKENCTL_URL": srv.URL, "API_TOKEN": apiToken}
	code, out, errOut := tokenctl(t, env, "list", "--state", "failing")
	require.Equal(t, exitOK, code, errOut)
	t.Log("\n" + out)
	assert.Regexp(t, `(?m)^ID\s+TYPE\s+PROVIDER\s+STATE\s+FAILED AT\s+REASON$`, out)
	assert.Regexp(t, `(?m)^11\s+16\s+ajio\s+failing\s+\S+Z\s+ajio rejected`, out)
	assert.Regexp(t, `(?m)^99\s+16\s+ajio\s+failing`, out)
	assert.Contains(t, out, "2 connection(s) failing at ")

	for _, args := range [][]string{
		{"-o", "json", "list", "--state", "failing", "--provider", "ajio"},
		{"list", "--state", "failing", "--provider", "ajio", "-o", "json"},
	} {
		code, out, errOut = tokenctl(t, env, args...)
		require.Equal(t, exitOK, code, errOut)
		var l struct {
			State       string           `json:"state"`
			Connections []map[string]any `json:"connections"`
			At          time.Time        `json:"at"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &l), out)
		assert.Equal(t, "failing", l.State, "the API's object, not a bare array")
		assert.Len(t, l.Connections, 2)
		assert.False(t, l.At.IsZero())
	}

	code, _, errOut = tokenctl(t, env, "list", "--state", "sideways")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `--state "sideways" is not one of failing, expired, due`)
}

// TestUsage: a usage mistake exits 2 with one line saying what was wrong,
// checked before API_TOKEN and before any request.
func TestUsage(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { requests.Add(1) }))
	t.Cleanup(srv.Close)
	withToken := map[string]string{"API_TOKEN": apiToken, "TOKENCTL_URL": srv.URL}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no command", withToken, nil, "tokenctl: no command given: one of refresh, retry, show, list, summary\n"},
		{"unknown command", withToken, []string{"frobnicate"}, "tokenctl: unknown command frobnicate (one of refresh, retry, show, list, summary)\n"},
		{"unknown command without a token", nil, []string{"frobnicate"}, "tokenctl: unknown command frobnicate (one of refresh, retry, show, list, summary)\n"},
		{"refresh without id", withToken, []string{"refresh"}, "tokenctl: refresh needs a connection id\n"},
		{"id not a number", withToken, []string{"refresh", "eleven"}, "tokenctl: the connection id must be a positive whole number (got \"eleven\")\n"},
		{"show without id", withToken, []string{"show"}, "tokenctl: show needs a connection id\n"},
		{"refresh with -o", withToken, []string{"refresh", "11", "--rejected-token-stdin", "-o", "json"}, "tokenctl: refresh takes no -o flag (its flags: --rejected-token-sha256, --rejected-token-stdin, --wait; -o is show's and list's)\n"},
		{"wait without a report", withToken, []string{"refresh", "11", "--wait", "5s"}, "tokenctl: --wait needs the rejected token (--rejected-token-sha256 or --rejected-token-stdin)\n"},
		{"report flags on retry", withToken, []string{"retry", "11", "--rejected-token-sha256", strings.Repeat("a", 64)}, "tokenctl: --rejected-token-sha256, --rejected-token-stdin and --wait go with refresh only\n"},
		{"show with two ids", withToken, []string{"show", "11", "12"}, "tokenctl: show takes one connection id (got 2 arguments)\n"},
		{"list without state", withToken, []string{"list"}, "tokenctl: --state is required: one of failing, expired, due\n"},
		{"list with a state that is none", withToken, []string{"list", "--state", "broken"}, "tokenctl: --state \"broken\" is not one of failing, expired, due\n"},
		{"list with an argument", withToken, []string{"list", "failing"}, "tokenctl: list takes no arguments (got \"failing\"); the state goes in --state\n"},
		{"bad output", withToken, []string{"show", "11", "-o", "yaml"}, "tokenctl: -o must be table or json (got \"yaml\")\n"},
		{"summary with an argument", withToken, []string{"summary", "16"}, "tokenctl: summary takes no arguments (got \"16\")\n"},
		{"no token", nil, []string{"summary"}, "tokenctl: API_TOKEN is not set (the refresher's bearer token)\n"},
		{"bad url", map[string]string{"API_TOKEN": apiToken, "TOKENCTL_URL": "ftp://x"}, []string{"summary"}, "tokenctl: -url must be an absolute http(s) URL\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tokenctl(t, tc.env, tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(errOut, tc.want), "stderr starts with the reason; got:\n%s", errOut)
		})
	}
	assert.Zero(t, requests.Load(), "no usage mistake reaches the network")

	code, out, errOut := tokenctl(t, nil, "-h")
	assert.Equal(t, exitOK, code, "help is not a mistake")
	assert.Empty(t, errOut)
	assert.Contains(t, out, "list --state failing|expired|due")
	assert.Contains(t, out, "API_TOKEN (required)")
}

func TestUnreachableRefresher(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	code, _, errOut := tokenctl(t, map[string]string{"API_TOKEN": apiToken, "TOKENCTL_URL": srv.URL}, "-timeout", (5 * time.Second).String(), "summary")
	assert.Equal(t, exitFailed, code)
	assert.Regexp(t, `^tokenctl: cannot reach the refresher at `+srv.URL+` \(TOKENCTL_URL or -url\): dial tcp .*\n$`, errOut)
}

// TestSummaryShowsBacklog: the summary shows, per rate-limited marketplace,
// the backlog waiting for rate slots (in Redis) and the live tokens that
// will lapse before their turn at that pace.
func TestSummaryShowsBacklog(t *testing.T) {
	t.Parallel()
	env := testenv.New(t)
	// A slot every 2 s: the turns come at +2 s, +4 s and +6 s, so of
	// three tokens expiring in 1.5 s, 2.5 s and a minute the first two
	// lapse before their turn.
	l := backlog.New(env.Redis, env.Queue, "16", backlog.Config{Interval: 2 * time.Second, Window: 1, Horizon: time.Minute})
	ctx := context.Background()
	now := time.Now()
	for id, d := range map[int64]time.Duration{1: 1500 * time.Millisecond, 2: 2500 * time.Millisecond, 3: time.Minute} {
		exp := now.Add(d)
		_, err := l.Place(ctx, id, &exp, now, time.Minute)
		require.NoError(t, err)
	}
	t.Cleanup(func() {
		for id := int64(1); id <= 3; id++ {
			l.Leave(context.Background(), id)
		}
	})
	a, err := api.New(api.Config{Token: apiToken, Targets: []token.Target{{IntegrationType: "16", Kind: "ajio", RefreshBefore: 10 * time.Minute}},
		Backlogs: []backlog.Named{{IntegrationType: "16", Provider: "ajio", List: l}}}, store{}, &queue{queued: map[int64]bool{}}, counts{}, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	code, out, errOut := tokenctl(t, map[string]string{"API_TOKEN": apiToken}, "-url", srv.URL, "summary")
	require.Equal(t, exitOK, code, errOut)
	t.Log("\n" + out)
	assert.Regexp(t, `16\s+ajio\s+10\s+7\s+2\s+1\s+1\s+3\s+2\s*\n`, out, "3 waiting, 2 at risk")
}
