package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUs       int
	CPU        string
	MemoryGiB  float64
	Kernel     string
	Go         string
	MariaDB    string
	Redis      string
	Commit     string
	LoadBefore string
	LoadAfter  string
}

func (r *runner) machine(ctx context.Context) (Machine, error) {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		CPU:        cpuModel(),
		Go:         runtime.Version(),
		Kernel:     strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		LoadBefore: loadAvg(),
	}
	if kb, err := procStatusKBFile("/proc/meminfo", "MemTotal"); err == nil {
		m.MemoryGiB = float64(kb) / (1 << 30)
	}
	if err := r.env.root.GetContext(ctx, &m.MariaDB, "SELECT VERSION()"); err != nil {
		return m, err
	}
	info, err := r.env.rdb.Info(ctx, "server").Result()
	if err != nil {
		return m, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "redis_version:"); ok {
			m.Redis = v
		}
	}
	if out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m, nil
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// loadAvg is the 1, 5 and 15 minute load averages: how busy the shared
// machine was around the run.
func loadAvg() string {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// procStatusKBFile reads a "Name:  123 kB" line of a /proc file, in bytes.
func procStatusKBFile(path, field string) (int64, error) {
	return parseKB(readFile(path), field)
}
