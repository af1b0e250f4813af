package ops_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/eshopbox/token-refresher/internal/ops"
)

// TestServerLimits: every server the product runs gets the limits of
// internal/ops (NewServer and Serve share them).
func TestServerLimits(t *testing.T) {
	t.Parallel()
	srv := ops.NewServer(http.NotFoundHandler())
	assert.Equal(t, ops.ReadHeaderTimeout, srv.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, srv.ReadTimeout)
	assert.Equal(t, 90*time.Second, srv.WriteTimeout)
	assert.Equal(t, 120*time.Second, srv.IdleTimeout)
	assert.Equal(t, 64<<10, srv.MaxHeaderBytes)
	assert.GreaterOrEqual(t, ops.WriteTimeout, 60*time.Second+10*time.Second, "room for a ?wait=60s answer")

	short := ops.NewServerWith(http.NotFoundHandler(), ops.ServerOptions{ReadTimeout: time.Second})
	assert.Equal(t, time.Second, short.ReadTimeout)
	assert.Equal(t, ops.WriteTimeout, short.WriteTimeout, "a zero option takes the default")
}

// serveShort serves a handler that reads the whole body, as the API does,
// with the limits shortened to seconds.
func serveShort(t *testing.T, o ops.ServerOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "read %d bytes\n", n)
	})
	addr, _, err := ops.ServeWith(ctx, "127.0.0.1:0", h, zap.NewNop(), o)
	require.NoError(t, err)
	return addr.String()
}

// TestTricklingBodyIsCut: a POST announcing 200000 bytes and sending one
// every 200ms (a slowloris body) is cut once ReadTimeout has passed since
// the request began, not when the body would end (11 hours later).
func TestTricklingBodyIsCut(t *testing.T) {
	t.Parallel()
	const readTimeout = 2 * time.Second
	addr := serveShort(t, ops.ServerOptions{ReadTimeout: readTimeout, ReadHeaderTimeout: readTimeout})

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n")
	require.NoError(t, err)

	// The server's answer (or its closing the connection) ends the read.
	cut := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(conn)
		cut <- string(b)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	sent := 0
	var answer string
loop:
	for {
		select {
		case answer = <-cut:
			break loop
		case <-tick.C:
			if _, err := conn.Write([]byte{'x'}); err == nil {
				sent++
			}
		case <-time.After(4 * readTimeout):
			t.Fatalf("the trickling body was not cut after %s (%d bytes sent)", time.Since(start).Round(time.Millisecond), sent)
		}
	}
	took := time.Since(start)
	t.Logf("FIGURE trickling body (1 byte / 200ms, Content-Length 200000): cut after %s with ReadTimeout %s, %d bytes sent; answer %q",
		took.Round(time.Millisecond), readTimeout, sent, firstLine(answer))
	assert.GreaterOrEqual(t, took, readTimeout-200*time.Millisecond)
	assert.Less(t, took, readTimeout+time.Second, "cut within the ReadTimeout (plus scheduling slack)")
	assert.NotContains(t, answer, "read 200000 bytes")
}

// TestIdleConnectionIsClosed: a keep-alive connection that sends no second
// request is closed by the server after IdleTimeout.
func TestIdleConnectionIsClosed(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	addr := serveShort(t, ops.ServerOptions{IdleTimeout: idle})

	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.False(t, resp.Close, "the connection is kept alive")

	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*idle)))
	_, err = br.ReadByte()
	took := time.Since(start)
	require.ErrorIs(t, err, io.EOF, "the server closed the idle connection (not our deadline)")
	t.Logf("FIGURE idle keep-alive connection closed after %s with IdleTimeout %s", took.Round(time.Millisecond), idle)
	assert.GreaterOrEqual(t, took, idle-100*time.Millisecond)
	assert.Less(t, took, idle+time.Second)
}

// TestOversizedHeadersRefused: headers over MaxHeaderBytes are answered 431.
func TestOversizedHeadersRefused(t *testing.T) {
	t.Parallel()
	addr := serveShort(t, ops.ServerOptions{})
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	require.NoError(t, err)
	req.Header.Set("X-Big", strings.Repeat("a", ops.MaxHeaderBytes+8<<10))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)

	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "16 KiB of headers pass")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
