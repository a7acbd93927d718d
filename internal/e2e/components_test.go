package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// requireComponents skips the test when a real component is missing, or
// fails it when CALIOP_E2E is set: CI must not skip silently. "root" stands
// for running as root (Postfix's master must start as root).
func requireComponents(t *testing.T, names ...string) map[string]string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	strict := os.Getenv("CALIOP_E2E") != "" && os.Getenv("CALIOP_E2E") != "0"
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		if n == "root" {
			if os.Geteuid() != 0 {
				missing = append(missing, "root privileges")
			}
			continue
		}
		p, err := lookPath(n)
		if err != nil {
			missing = append(missing, n)
			continue
		}
		paths[n] = p
	}
	if len(missing) == 0 {
		return paths
	}
	msg := strings.Join(missing, ", ") + " not available"
	if !strict {
		if slices.Contains(missing, "postfix") {
			t.Skip("postfix not installed; set CALIOP_E2E=1 to require it")
		}
		t.Skip(msg + "; set CALIOP_E2E=1 to require it")
	}
	t.Fatalf("CALIOP_E2E is set but %s (install with .ci/run)", msg)
	return nil
}

// lookPath is LookPath (dnssec.go), for the tests of this package.
func lookPath(name string) (string, error) { return LookPath(name) }

// runCmd runs a command with a time bound and returns its combined output.
func runCmd(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// runCmdEnv is runCmd with extra environment variables.
func runCmdEnv(timeout time.Duration, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = time.Second
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// runStdout runs a command with a time bound and returns its standard
// output; standard error goes into the error, if any.
func runStdout(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		err = fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return string(b), err
}

// buildCaliop compiles the binary once per test into its temp dir.
func buildCaliop(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caliop")
	// Reading the command's sources ties the cached test result to them
	// (see cache_test.go for its packages).
	srcs, _ := filepath.Glob(filepath.Join("..", "..", "cmd", "caliop", "*.go"))
	for _, f := range srcs {
		os.ReadFile(f)
	}
	if err := Build(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// startCaliop starts Caliop with cfg (DataDir and Metrics filled in if
// empty), stops it at cleanup (a non-clean exit fails the test), and logs
// its output if the test failed.
func startCaliop(t *testing.T, bin string, cfg Config) *Process {
	t.Helper()
	dir := t.TempDir()
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(dir, "data")
	}
	if cfg.Metrics == "" {
		cfg.Metrics = freeAddr(t)
	}
	out := &LockedBuffer{Max: 1 << 20}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caliop config:\n%s\ncaliop output:\n%s", cfg.YAML(), out.String())
		}
	})
	p, err := Start(bin, dir, cfg, out)
	if err != nil {
		t.Fatal(err)
	}
	p.Output = out
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return p
}

// waitOutput reports whether p wrote s within d (Caliop flushes its log
// every 200 ms).
func waitOutput(p *Process, s string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.Output.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
