package bench

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eshopbox/token-refresher/internal/ops"
	"github.com/eshopbox/token-refresher/internal/sandbox"
)

// market is the marketplace of a bench run: the project's sandbox on a real
// loopback port, replaced by a fresh one for each measurement so its
// counters (calls, peak per second) are that measurement's alone.
type market struct {
	srv *http.Server
	url string
	cur atomic.Pointer[marketState]
}

type marketState struct {
	sb   *sandbox.Server
	h    http.Handler
	gate *gate
}

func newMarket() (*market, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m := &market{url: "http://" + ln.Addr().String()}
	m.reset(sandbox.Faults{}, 0)
	m.srv = ops.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.cur.Load().h.ServeHTTP(w, r) }))
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return m, nil
}

// reset starts a fresh sandbox with faults and, when quota > 0, a gate that
// answers HTTP 429 to every token call beyond quota in one wall-clock
// second, as a marketplace enforcing its rate limit does.
func (m *market) reset(f sandbox.Faults, quota int) *marketState {
	sb := sandbox.New()
	sb.SetFaults(f)
	st := &marketState{sb: sb, gate: &gate{quota: quota}}
	st.h = st.gate.wrap(sb.Handler())
	m.cur.Store(st)
	return st
}

func (m *market) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.srv.Shutdown(ctx)
}

// gate counts every token call that reaches the marketplace, the most in
// one wall-clock second, and the calls it refused for the quota.
type gate struct {
	quota int

	mu      sync.Mutex
	calls   int
	limited int
	second  int64
	inSec   int
	peak    int
}

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/authToken" {
			next.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		g.calls++
		now := time.Now().Unix()
		if now != g.second {
			g.second, g.inSec = now, 0
		}
		g.inSec++
		g.peak = max(g.peak, g.inSec)
		over := g.quota > 0 && g.inSec > g.quota
		if over {
			g.limited++
		}
		g.mu.Unlock()
		if over {
			w.Header().Set("Retry-After", strconv.Itoa(1))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "rate limit exceeded"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

type gateStats struct{ calls, limited, peak int }

func (g *gate) stats() gateStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gateStats{g.calls, g.limited, g.peak}
}
