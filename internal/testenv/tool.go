package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var installMu sync.Mutex

// Tool returns the path of a command-line tool a test needs
// (docker-compose, promtool, chromium). When it is missing, scripts/tools.sh
// installs it from Debian's packages; when that fails too, the test is
// skipped with a message saying what was not checked and why. A check that
// cannot run must say so, never pass in silence.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	installMu.Lock()
	defer installMu.Unlock()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	script := filepath.Join(RepoRoot(t), "scripts", "tools.sh")
	out, err := exec.Command("bash", script, name).CombinedOutput()
	if p, lerr := exec.LookPath(name); lerr == nil {
		return p
	}
	msg := fmt.Sprintf("NOT CHECKED: %s is not installed and could not be installed (%v): %s",
		name, err, strings.TrimSpace(string(out)))
	fmt.Fprintln(os.Stderr, "testenv:", t.Name(), msg)
	t.Skip(msg)
	return ""
}

// RepoRoot is the directory of the module's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("testenv: no go.mod above the test's directory")
		}
		dir = parent
	}
}
