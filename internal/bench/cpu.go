package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times (100 on Linux x86 and
// arm64).
const clockTick = 10 * time.Millisecond

// cpuParts are the processes a run's CPU time is split between.
var cpuParts = []string{"product", "bench+sandbox", "mariadbd", "redis-server", "other"}

// cpuMeter reads where the machine's CPU time goes during one run: the
// product process under test, this process (the sandbox marketplace and
// the bench's own polling), MariaDB, Redis, and everything else (other
// users of the shared machine). MariaDB and Redis are shared too, so their
// share includes other clients' load.
type cpuMeter struct {
	product int // pid of the product child, 0 when in-process
	servers map[string]int
}

type cpuSample struct {
	at    time.Time
	parts map[string]time.Duration
	busy  time.Duration // all CPUs, from /proc/stat
}

func newCPUMeter(productPID int) *cpuMeter {
	m := &cpuMeter{product: productPID, servers: map[string]int{}}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue
		}
		comm := strings.TrimSpace(string(b))
		pid, _ := strconv.Atoi(filepath.Base(d))
		switch comm {
		case "mariadbd", "mysqld":
			m.servers["mariadbd"] = pid
		case "redis-server":
			m.servers["redis-server"] = pid
		}
	}
	return m
}

func (m *cpuMeter) sample() cpuSample {
	s := cpuSample{at: time.Now(), parts: map[string]time.Duration{}}
	if m.product != 0 {
		s.parts["product"] = procCPU(m.product)
	}
	s.parts["bench+sandbox"] = procCPU(os.Getpid())
	for name, pid := range m.servers {
		s.parts[name] = procCPU(pid)
	}
	s.busy = machineBusy()
	return s
}

// cpuUse is CPU time per part between two samples.
type cpuUse map[string]time.Duration

func (m *cpuMeter) since(a cpuSample) cpuUse {
	b := m.sample()
	u := cpuUse{}
	var ours time.Duration
	for k, v := range b.parts {
		d := v - a.parts[k]
		u[k] = d
		ours += d
	}
	u["other"] = max(0, (b.busy-a.busy)-ours)
	u["wall"] = b.at.Sub(a.at)
	return u
}

// procCPU is a process's user+system time (0 when it is gone).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * clockTick
}

// machineBusy is the CPU time all CPUs spent not idle since boot.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		// user nice system idle iowait irq softirq steal guest guest_nice;
		// guest time is already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * clockTick
}
