package dashboard

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Failed logins are throttled per client: after MaxFailedLogins failures
// from one client within FailureWindow, every request from it is answered
// 429 with Retry-After for LockoutPeriod, right password or not, so a
// guesser gets 5 tries a minute at most.
const (
	MaxFailedLogins = 5
	FailureWindow   = time.Minute
	LockoutPeriod   = time.Minute
	// maxClients bounds the table: past it, entries with no lockout running
	// are dropped first (a flood from many addresses cannot grow it without
	// bound, and the locked-out clients stay locked out).
	maxClients = 10000
)

// throttle counts failed logins per client. A client is the connection's
// remote IP (IPv6: its /64, which one host usually holds whole). Behind a
// reverse proxy or port-forward every client shares the proxy's address,
// so a guesser there locks everyone out for a minute: the price of not
// trusting X-Forwarded-For, which any client can set.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	clients map[string]*failures
}

type failures struct {
	n       int       // failures since first
	first   time.Time // start of the counting window
	lockEnd time.Time // locked out until then
}

func newThrottle() *throttle {
	return &throttle{now: time.Now, clients: map[string]*failures{}}
}

// client keys a request by its remote IP (the /64 for IPv6).
func client(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

// locked reports how long the client is still locked out (0: not).
func (t *throttle) locked(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.clients[key]
	if f == nil {
		return 0
	}
	if left := f.lockEnd.Sub(t.now()); left > 0 {
		return left
	}
	return 0
}

// fail records a failed login; the MaxFailedLogins-th within FailureWindow
// starts a lockout.
func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	f := t.clients[key]
	if f == nil {
		if len(t.clients) >= maxClients {
			t.prune(now)
		}
		f = &failures{}
		t.clients[key] = f
	}
	if now.Sub(f.first) >= FailureWindow {
		f.n, f.first = 0, now
	}
	f.n++
	if f.n >= MaxFailedLogins {
		f.lockEnd = now.Add(LockoutPeriod)
		f.n, f.first = 0, now
	}
}

// prune drops the entries whose window and lockout are over, then, if the
// table is still full, the ones without a lockout running.
func (t *throttle) prune(now time.Time) {
	for k, f := range t.clients {
		if now.Sub(f.first) >= FailureWindow && !now.Before(f.lockEnd) {
			delete(t.clients, k)
		}
	}
	if len(t.clients) < maxClients {
		return
	}
	for k, f := range t.clients {
		if !now.Before(f.lockEnd) {
			delete(t.clients, k)
		}
	}
}

// refuse answers 429 with Retry-After in whole seconds (rounded up).
func refuse(w http.ResponseWriter, left time.Duration) {
	secs := int((left + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, "too many failed logins from this address: try again in "+strconv.Itoa(secs)+"s", http.StatusTooManyRequests)
}
