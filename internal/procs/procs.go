// Package procs is the process harness the tests (internal/testenv,
// e2e/fault, e2e) and the benchmarks (internal/bench) share: a child
// process that dies with its parent (Start), ended politely or not
// (Stop, Kill), free loopback ports, the programs a private server needs
// (Program), and private mariadbd and redis-server processes on free
// loopback ports (StartMariaDB, StartRedis). It returns errors, takes no
// testing.TB and does not import testing, so a program (bin/bench) can use
// it without linking the test framework in; internal/testenv wraps it for
// the tests.
package procs

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// KillWithParent asks, where the system can (Linux's Pdeathsig), for a
// child process to get SIGKILL when the thread that started it ends, so a
// server a test or the bench started dies with it. Elsewhere it asks for
// nothing.
func KillWithParent() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	return attr
}

// Proc is a started child process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's, set when done is closed
}

// Start runs path with args, env as its whole environment (nil: the
// caller's), and its standard output and error to out (nil: discarded).
// The process gets SIGKILL should the caller die first (a test binary's
// timeout panic, a killed bench): KillWithParent, tied to a thread that
// stays locked to the goroutine waiting for the process until it exits.
func Start(name, path string, args, env []string, out io.Writer) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = KillWithParent()
	p := &Proc{Name: name, Cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Running reports whether the process has not exited yet.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Err is how the process ended (exec.Cmd.Wait's error: nil for exit status
// 0); valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid is the process's id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// WaitFor waits up to timeout for the process to exit and reports whether
// it did.
func (p *Proc) WaitFor(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Stop ends the process: SIGTERM, then SIGKILL when it has not exited
// within timeout. It reports whether the process exited by itself (before
// the SIGKILL, or before Stop was called), and returns once it is gone.
func (p *Proc) Stop(timeout time.Duration) bool {
	if !p.Running() {
		return true
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if p.WaitFor(timeout) {
		return true
	}
	p.Kill()
	return false
}

// Program looks name up in PATH, then in the sbin and bin directories a
// non-root PATH often leaves out.
func Program(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if fi, serr := os.Stat(p); serr == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", err
}

// FreePort is a TCP port free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr() (string, error) {
	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// FileTail is the last max bytes of the file at path, for error messages
// ("(error)" when it cannot be read).
func FileTail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// FirstLines is the first n lines of s.
func FirstLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
