package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eshopbox/token-refresher/internal/procs"
)

// proc is a child process of a product binary (bin/scanner, bin/refresher),
// started with its settings in the environment, as it runs in production
// (internal/procs: it dies with the bench).
type proc struct {
	*procs.Proc
	name string
	addr string // HTTP_ADDR, when set
	log  string // its stdout and stderr
}

// start runs bin/<name> with vars as its whole environment (plus PATH), so
// nothing of the caller's environment leaks into the measurement.
func (e *env) start(binDir, name string, args []string, vars map[string]string) (*proc, error) {
	p := &proc{name: name, addr: vars["HTTP_ADDR"]}
	p.log = filepath.Join(e.tmp, fmt.Sprintf("%s-%d.log", name, e.queueSeq.Add(1)))
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own copy
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	if p.Proc, err = procs.Start(name, filepath.Join(binDir, name), args, env, f); err != nil {
		return nil, err
	}
	return p, nil
}

// waitReady polls /readyz until the process answers 200.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited before it was ready: %v; %s", p.name, p.Err(), p.tail())
		default:
		}
		resp, err := client.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; %s", p.name, timeout, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// hwm is the process's peak resident set (VmHWM) in bytes.
func (p *proc) hwm() (int64, error) {
	return procStatusKB(p.Pid(), "VmHWM")
}

func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseKB(string(b), field)
}

// parseKB finds "field:   123 kB" in a /proc file's text and returns bytes.
func parseKB(text, field string) (int64, error) {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s", field)
}

// stop sends SIGTERM and waits for the process to drain and exit; a process
// still running after timeout is killed.
func (p *proc) stop(timeout time.Duration) error {
	if !p.Stop(timeout) {
		return fmt.Errorf("%s did not stop within %s after SIGTERM", p.name, timeout)
	}
	return p.exitErr()
}

// wait waits for the process to exit by itself.
func (p *proc) wait(timeout time.Duration) error {
	if !p.WaitFor(timeout) {
		p.Kill()
		return fmt.Errorf("%s still running after %s; killed", p.name, timeout)
	}
	return p.exitErr()
}

func (p *proc) exitErr() error {
	if err := p.Err(); err != nil {
		return fmt.Errorf("%s: %w; %s", p.name, err, p.tail())
	}
	return nil
}

// maxRSS is the peak resident set of an exited process, from wait4's rusage
// (the kernel's hiwater_rss, the counter VmHWM shows while it runs).
func (p *proc) maxRSS() (int64, error) {
	st := p.Cmd.ProcessState
	if st == nil {
		return 0, errors.New("process has not exited")
	}
	ru, ok := st.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, errors.New("no rusage on this platform")
	}
	return ru.Maxrss * 1024, nil
}

// tail is the end of the process's log, for error messages.
func (p *proc) tail() string {
	if _, err := os.Stat(p.log); err != nil {
		return "no log"
	}
	return "log tail: " + procs.FileTail(p.log, 2000)
}
