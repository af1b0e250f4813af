// Package ops is the operational HTTP surface of a binary: /healthz (the
// process is alive), /readyz (its dependencies answer) and /metrics. Other
// handlers (the dashboard, the API) are mounted on the same mux by cmd/.
package ops

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check is one readiness probe (a database ping, a Redis ping).
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
	// Explain shows Fn's error text in /readyz's answer: set it only for
	// an error written to be secret-free and address-free (the write
	// gate's reason); otherwise only Name is said.
	Explain bool
}

// NewMux returns a mux serving the health, readiness and metrics endpoints.
func NewMux(reg *prometheus.Registry, checks []Check) *http.ServeMux {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				// The reason names the dependency, not its address or
				// credentials.
				if c.Explain {
					http.Error(w, c.Name+": "+err.Error(), http.StatusServiceUnavailable)
					return
				}
				http.Error(w, c.Name+" not reachable", http.StatusServiceUnavailable)
				return
			}
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// The limits of every HTTP server the product runs (NewServer, Serve,
// ServeProfiling; the demo's dashboard uses NewServer too). A client that
// is slow on purpose (slowloris: headers or a body trickled a byte at a
// time, a connection held open and idle) holds a goroutine and a file
// descriptor for at most these times.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, headers and body. Bodies
	// are small (the API caps them at 1 MiB), so 30s is ample even on a
	// slow link; a client trickling its body is cut when it runs out.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds a request from the end of its headers to the end
	// of the answer. 90s leaves room for a long-poll answer of up to 60s
	// (a future ?wait=60s). net/http/pprof extends it by a profile's
	// seconds= itself, so long CPU profiles and traces still finish.
	WriteTimeout = 90 * time.Second
	// IdleTimeout closes a keep-alive connection that sends no new request.
	IdleTimeout = 120 * time.Second
	// MaxHeaderBytes caps the request line and headers (Go's default is 1
	// MiB); an API call's headers are well under 8 KiB.
	MaxHeaderBytes = 64 << 10
)

// serverOptions are the limits newServer applies; a zero field takes the
// constant above. Only the tests shorten them (export_test.go).
type serverOptions struct {
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
}

func newServer(h http.Handler, o serverOptions) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	maxHeader := o.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = MaxHeaderBytes
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(o.ReadHeaderTimeout, ReadHeaderTimeout),
		ReadTimeout:       or(o.ReadTimeout, ReadTimeout),
		WriteTimeout:      or(o.WriteTimeout, WriteTimeout),
		IdleTimeout:       or(o.IdleTimeout, IdleTimeout),
		MaxHeaderBytes:    maxHeader,
	}
}

// NewServer returns an http.Server for h with the limits above. Use it for
// every server the product runs, so none is left without them.
func NewServer(h http.Handler) *http.Server {
	return newServer(h, serverOptions{})
}

// Serve listens on addr and serves h until ctx ends, then shuts down. The
// returned channel reports the listener's fate once. The server has the
// limits above (NewServer).
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) (net.Addr, <-chan error, error) {
	return serve(ctx, addr, h, log, serverOptions{})
}

func serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger, o serverOptions) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := newServer(h, o)
	done := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			log.Warn("HTTP shutdown", zap.Error(err))
		}
	}()
	log.Info("serving HTTP", zap.String("addr", ln.Addr().String()))
	return ln.Addr(), done, nil
}

// SetPageHeaders sets the headers every HTML page of the product carries:
// it may not be framed by another site (X-Frame-Options for old browsers,
// CSP frame-ancestors for current ones: clickjacking on the dashboard's
// buttons), and browsers must not guess a content type other than the one
// sent (nosniff).
func SetPageHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
}

// PageHeaders wraps h so that every answer carries SetPageHeaders' headers
// (harmless on JSON and metrics, and no page is left without them).
func PageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetPageHeaders(w.Header())
		h.ServeHTTP(w, r)
	})
}
