// Package redistest runs a real redis-server on 127.0.0.1 for tests,
// killed when the test ends. Start's server keeps its data in memory only
// (no RDB, no AOF), and Restart brings one back on the same port, empty,
// as after a crash of a Redis without persistence. StartIn's server
// writes every change to an append-only file in a directory before
// answering, and RestartIn brings it back with its data, even after a
// kill.
//
// A missing redis-server skips the test, unless CALIOP_E2E is set (and
// not "0"): then it fails it, since CI must not skip silently. -short
// skips too.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds the wait for a new server to answer PING.
const startTimeout = 10 * time.Second

// Start runs redis-server on a free port of 127.0.0.1 and returns its
// address ("127.0.0.1:port") and a function that kills it (SIGKILL, as a
// crash). stop may be called more than once; it also runs when the test
// ends.
func Start(t testing.TB) (addr string, stop func()) {
	t.Helper()
	return start(t, "")
}

// StartIn is Start with the data kept in dir (append-only file, fsync
// on every write), for RestartIn.
func StartIn(t testing.TB, dir string) (addr string, stop func()) {
	t.Helper()
	return start(t, dir)
}

func start(t testing.TB, dir string) (addr string, stop func()) {
	t.Helper()
	bin := require(t)
	var last error
	// The free port may be taken between its probe and the server's
	// bind: try another.
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		stop, err := launch(t, bin, addr, dir)
		if err == nil {
			return addr, stop
		}
		last = err
	}
	t.Fatalf("redistest: %v", last)
	return "", nil
}

// Restart runs a new, empty redis-server on addr, which Start returned
// and whose server was stopped, and returns the function that kills it.
func Restart(t testing.TB, addr string) (stop func()) {
	t.Helper()
	return restart(t, addr, "")
}

// RestartIn runs a new redis-server on addr with the data that StartIn's
// (stopped) server left in dir.
func RestartIn(t testing.TB, addr, dir string) (stop func()) {
	t.Helper()
	return restart(t, addr, dir)
}

func restart(t testing.TB, addr, dir string) (stop func()) {
	t.Helper()
	bin := require(t)
	var last error
	// The old process's port may take a moment to be free again.
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		stop, err := launch(t, bin, addr, dir)
		if err == nil {
			return stop
		}
		last = err
	}
	t.Fatalf("redistest: restart on %s: %v", addr, last)
	return nil
}

// require returns redis-server's path, or skips or fails the test.
func require(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("redis-server test skipped in -short mode")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		for _, p := range []string{"/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"} {
			if _, e := os.Stat(p); e == nil {
				bin, err = p, nil
				break
			}
		}
	}
	if err == nil {
		return bin
	}
	if e := os.Getenv("CALIOP_E2E"); e != "" && e != "0" {
		t.Fatal("CALIOP_E2E is set but redis-server is not available (install the redis-server package, as .ci/run does)")
	}
	t.Skip("redis-server not installed; set CALIOP_E2E=1 to require it")
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts redis-server on addr and waits until it answers PING.
// With a dir, every write goes to the append-only file there before the
// answer; without, nothing is written anywhere.
func launch(t testing.TB, bin, addr, dir string) (func(), error) {
	host, port, _ := net.SplitHostPort(addr)
	args := []string{"--port", port, "--bind", host, "--save", "", "--logfile", ""}
	if dir == "" {
		args = append(args, "--appendonly", "no", "--dir", t.TempDir())
	} else {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always", "--dir", dir)
	}
	var out syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
		})
	}
	for deadline := time.Now().Add(startTimeout); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return nil, fmt.Errorf("redis-server on %s exited: %s", addr, lastLines(out.String()))
		default:
		}
		if ping(addr) == nil {
			t.Cleanup(stop)
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v: %s", addr, startTimeout, lastLines(out.String()))
		}
	}
}

// ping sends PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// syncBuffer is the server's output, written by exec's copier goroutine
// and read by launch.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
