package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eshopbox/token-refresher/internal/testenv"
)

func TestStandaloneDashboard(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	vars := map[string]string{
		"REDIS_URL": "redis://" + testenv.RedisAddr() + "/0", "HTTP_ADDR": addr,
		"DASHBOARD_USER": "ops", "DASHBOARD_PASSWORD": "pw-0123456789", "DASHBOARD_READ_ONLY": "true",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return vars[k] }, io.Discard, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, 0, code)
		case <-time.After(30 * time.Second):
			t.Error("the dashboard did not stop")
		}
	})
	get := func(path string, auth bool) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
		require.NoError(t, err)
		if auth {
			req.SetBasicAuth("ops", "pw-0123456789")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testenv.Eventually(t, 30*time.Second, "the dashboard to answer /healthz", func() bool {
		status, _ := get("/healthz", false)
		return status == http.StatusOK
	})
	status, _ := get("/", false)
	assert.Equal(t, http.StatusUnauthorized, status)
	status, body := get("/", true)
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, `<script src="/static/js/main.`, "asynqmon rooted at /")
	assert.Contains(t, body, `window.FLAG_READ_ONLY="true"`)
	status, _ = get("/api/queues", true)
	assert.Equal(t, http.StatusOK, status)
}

func TestStandaloneDashboardNeedsCredentials(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	code := run(context.Background(), nil, func(k string) string {
		return map[string]string{"DASHBOARD_USER": "ops"}[k]
	}, io.Discard, &stderr)
	assert.Equal(t, 2, code)
	assert.True(t, strings.HasPrefix(stderr.String(), "dashboard: invalid setting DASHBOARD_PASSWORD"), stderr.String())
}
