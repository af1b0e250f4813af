package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/api"
	"github.com/eshopbox/token-refresher/internal/census"
	"github.com/eshopbox/token-refresher/internal/task"
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

type queue struct{ queued map[int64]bool }

func (q *queue) EnqueueForced(_ context.Context, p task.Payload) (bool, error) {
	if q.queued[p.ConnectionID] {
		return false, nil
	}
	q.queued[p.ConnectionID] = true
	return true, nil
}

type counts struct{}

func (counts) Take(context.Context) ([]census.Count, error) {
	return []census.Count{{IntegrationType: "16", Provider: "ajio", Active: 10, Fresh: 7, Due: 2, Expired: 1, Failing: 1, ExpiredFailing: 1}}, nil
}

// server is the real API on fakes: the CLI is tested against the answers
// the refresher really gives.
func server(t *testing.T) *httptest.Server {
	t.Helper()
	a, err := api.New(api.Config{Token: apiToken, IntegrationTypes: []string{"16"}}, store{}, &queue{queued: map[int64]bool{}}, counts{}, zap.NewNop())
	require.NoError(t, err)
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv
}

func tokenctl(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
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

func TestSummaryCommand(t *testing.T) {
	t.Parallel()
	srv := server(t)
	code, out, errOut := tokenctl(t, map[string]string{"API_TOKEN": apiToken}, "-url", srv.URL, "summary")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `TYPE\s+PROVIDER\s+ACTIVE\s+FRESH\s+DUE\s+EXPIRED\s+FAILING`, out)
	assert.Regexp(t, `16\s+ajio\s+10\s+7\s+2\s+1\s+1`, out)
	assert.Regexp(t, `at \d{4}-\d\d-\d\dT`, out)
}

func TestUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"no command", map[string]string{"API_TOKEN": apiToken}, nil},
		{"unknown command", map[string]string{"API_TOKEN": apiToken}, []string{"purge"}},
		{"refresh without id", map[string]string{"API_TOKEN": apiToken}, []string{"refresh"}},
		{"id not a number", map[string]string{"API_TOKEN": apiToken}, []string{"refresh", "eleven"}},
		{"no token", nil, []string{"summary"}},
		{"bad url", map[string]string{"API_TOKEN": apiToken, "TOKENCTL_URL": "ftp://x"}, []string{"summary"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := tokenctl(t, tc.env, tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.NotEmpty(t, errOut)
		})
	}
}

func TestUnreachableRefresher(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	code, _, errOut := tokenctl(t, map[string]string{"API_TOKEN": apiToken, "TOKENCTL_URL": srv.URL}, "-timeout", (5 * time.Second).String(), "summary")
	assert.Equal(t, exitFailed, code)
	assert.Regexp(t, `^tokenctl: cannot reach the refresher at `+srv.URL+` \(TOKENCTL_URL or -url\): dial tcp .*\n$`, errOut)
}
