package e2e

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/dnstest"
)

// TestReloadOnSIGHUP sends the caliop process a real SIGHUP after
// rewriting its configuration file: a new host name is greeted with on
// new connections while a session opened before goes on; a broken file
// is logged and changes nothing; the process then still stops cleanly on
// SIGTERM.
func TestReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	bin := buildCaliop(t)
	dns := dnstest.Start(t)
	dir := t.TempDir()
	cfg := Config{Hostname: "old.test", DataDir: filepath.Join(dir, "data"), DNS: dns.Addr, SMTP: freeAddr(t), Metrics: freeAddr(t), MXPort: 25}
	out := &LockedBuffer{Max: 1 << 20}
	p, err := Start(bin, dir, cfg, out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("caliop output:\n%s", out.String())
		}
	})
	if g := greeting(t, cfg.SMTP); !strings.HasPrefix(g, "220 old.test ") {
		t.Fatalf("greeting %q", g)
	}
	before, err := net.DialTimeout("tcp", cfg.SMTP, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	before.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(before)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 old.test ") {
		t.Fatalf("greeting %q, %v", line, err)
	}

	reload := func(yaml, logged string) {
		t.Helper()
		if err := os.WriteFile(p.ConfigPath, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		n := strings.Count(out.String(), logged)
		if err := syscall.Kill(p.Pid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// Log lines are written at most 200 ms apart.
		for deadline := time.Now().Add(10 * time.Second); strings.Count(out.String(), logged) == n; {
			if exited, err := p.Exited(); exited {
				t.Fatalf("caliop exited after SIGHUP: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q logged 10s after SIGHUP", logged)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	cfg.Hostname = "new.test"
	reload(cfg.YAML(), `"configuration reloaded"`)
	if g := greeting(t, cfg.SMTP); !strings.HasPrefix(g, "220 new.test ") {
		t.Errorf("greeting after the reload %q", g)
	}
	before.Write([]byte("NOOP\r\n"))
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "250 ") {
		t.Errorf("session opened before the reload: NOOP → %q, %v", line, err)
	}

	reload("hostname: [broken\n", `"reload failed, keeping the running configuration"`)
	if g := greeting(t, cfg.SMTP); !strings.HasPrefix(g, "220 new.test ") {
		t.Errorf("greeting after the failed reload %q", g)
	}
	before.Write([]byte("QUIT\r\n"))
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "221 ") {
		t.Errorf("session opened before the reloads: QUIT → %q, %v", line, err)
	}
}

// greeting is the first line addr sends.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("QUIT\r\n"))
	return line
}
