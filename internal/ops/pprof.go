package ops

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"

	"go.uber.org/zap"
)

// CheckProfilingAddr accepts a PPROF_ADDR: host:port whose host is a
// loopback address (127.0.0.1, ::1 or localhost). net/http/pprof's
// endpoints have no authentication, and a CPU profile costs the process
// while it runs, so they are never served where another machine can reach
// them; reach them with kubectl port-forward or an SSH tunnel.
func CheckProfilingAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port (127.0.0.1:6060)")
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address: the profiling endpoints have no authentication (use 127.0.0.1:6060 and a port-forward)", host)
}

// ServeProfiling serves the Go runtime's profiles (net/http/pprof, under
// /debug/pprof/: cpu via /debug/pprof/profile?seconds=N, heap, goroutine,
// trace) on addr, a loopback address (CheckProfilingAddr), until ctx ends.
// It returns the address listened on, or the listen error.
func ServeProfiling(ctx context.Context, addr string, log *zap.Logger) (net.Addr, error) {
	if err := CheckProfilingAddr(addr); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a, _, err := Serve(ctx, addr, mux, log)
	return a, err
}
