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

// Serve listens on addr and serves h until ctx ends, then shuts down. The
// returned channel reports the listener's fate once.
func Serve(ctx context.Context, addr string, h http.Handler, log *zap.Logger) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
