package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

// An unreachable Redis stops start-up with one line naming REDIS_URL and
// the address, and nothing of go-redis's own before it: the binary runs as
// a process of its own (this test binary re-run as main) so that what
// go-redis prints to the process's standard error is seen too.
func TestRedisUnreachableIsOneLine(t *testing.T) {
	if os.Getenv("TR_TEST_RUN_MAIN") == "1" {
		os.Args = os.Args[:1]
		main()
		return
	}
	t.Parallel()
	env := testenv.New(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRedisUnreachableIsOneLine$")
	cmd.Env = append(os.Environ(), "TR_TEST_RUN_MAIN=1", "LOG_LEVEL=info",
		"WMS_DB_DSN="+env.WMSDSN, "IE_DB_DSN="+env.IEDSN, "REDIS_URL=redis://:hunter2@127.0.0.1:1/0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "exits non-zero: %v", err)
	assert.Equal(t, 1, exit.ExitCode())
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	require.Len(t, lines, 1, "one line:\n%s", stderr.String())
	assert.Contains(t, lines[0], `"error":"REDIS_URL: cannot reach Redis at 127.0.0.1:1: `)
	assert.NotContains(t, stderr.String()+stdout.String(), "hunter2")
}
