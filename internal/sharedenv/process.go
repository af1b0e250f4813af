package sharedenv

import (
	"os"
	"reflect"
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

// Stop ends a server process (SIGTERM, then SIGKILL after 10 seconds) and
// waits until exited, closed when it has exited, is closed. It does nothing
// when exited already is.
func Stop(p *os.Process, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		p.Kill()
		<-exited
	}
}
