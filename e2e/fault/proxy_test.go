package fault

import (
	"net"
	"sync"
	"testing"

	driver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
)

// dbProxy is a TCP fault proxy between a binary and MariaDB. Open forwards;
// Stall holds every byte in both directions on every connection (a database
// that stops answering); Cut closes every connection and refuses new ones (a
// database that is unreachable).
type dbProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  int           // proxyOpen, proxyStalled, proxyCut
	gate  chan struct{} // closed while not stalled
	conns map[net.Conn]struct{}
}

const (
	proxyOpen = iota
	proxyStalled
	proxyCut
)

func newDBProxy(t testing.TB, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{ln: ln, target: target, gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.gate)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

// DSN returns dsn pointed at the proxy.
func (p *dbProxy) DSN(t testing.TB, dsn string) string {
	t.Helper()
	cfg, err := driver.ParseDSN(dsn)
	require.NoError(t, err)
	cfg.Addr = p.ln.Addr().String()
	return cfg.FormatDSN()
}

func (p *dbProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.mode == proxyCut
		p.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		go p.serve(c)
	}
}

func (p *dbProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	if !p.track(client, server) {
		return
	}
	go p.pipe(server, client)
	p.pipe(client, server)
}

func (p *dbProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == proxyCut {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// pipe copies src to dst, holding each chunk while the proxy is stalled.
func (p *dbProxy) pipe(dst, src net.Conn) {
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Open forwards again.
func (p *dbProxy) Open() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == proxyStalled {
		close(p.gate)
	}
	p.mode = proxyOpen
}

// Stall stops forwarding without closing anything.
func (p *dbProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != proxyStalled {
		p.gate = make(chan struct{})
	}
	p.mode = proxyStalled
}

// Cut closes every connection and refuses new ones until Open.
func (p *dbProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Close first, then release the held copies: they find their sockets
	// closed, so nothing held while stalled is delivered.
	for c := range p.conns {
		c.Close()
	}
	if p.mode == proxyStalled {
		close(p.gate)
	}
	p.mode = proxyCut
}
