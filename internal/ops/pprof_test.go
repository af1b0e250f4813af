package ops_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/ops"
)

func TestProfilingOnLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:6060"} {
		assert.NoError(t, ops.CheckProfilingAddr(addr), addr)
	}
	for _, addr := range []string{":6060", "0.0.0.0:6060", "10.1.2.3:6060", "example.com:6060", "127.0.0.1"} {
		assert.Error(t, ops.CheckProfilingAddr(addr), addr)
	}
	_, err := ops.ServeProfiling(context.Background(), "0.0.0.0:0", zap.NewNop())
	assert.ErrorContains(t, err, "not a loopback address")
}

// TestProfilingServesTheRuntimeProfiles: a CPU profile and the index answer
// on the loopback address, and nothing else is mounted there.
func TestProfilingServesTheRuntimeProfiles(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := ops.ServeProfiling(ctx, "127.0.0.1:0", zap.NewNop())
	require.NoError(t, err)
	get := func(path string) (int, []byte) {
		resp, err := http.Get("http://" + addr.String() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
	code, body := get("/debug/pprof/")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, string(body), "goroutine")
	code, body = get("/debug/pprof/profile?seconds=1")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, []byte{0x1f, 0x8b}, body[:2], "a gzipped profile.proto")
	code, _ = get("/metrics")
	assert.Equal(t, http.StatusNotFound, code)
}
