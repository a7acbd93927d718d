package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer writes name.conf for a free port, starts bin args...
// name.conf with its output appended to name.log, and waits up to wait for
// ready to succeed. A server that exits before it is ready (its port
// taken in the meantime, say) is retried on another port, twice. The
// server is stopped at cleanup. It returns "127.0.0.1:port".
func (d *DNSSEC) startServer(t testing.TB, name string, wait time.Duration, conf func(port int) string, ready func(addr string) error, bin string, args ...string) string {
	t.Helper()
	confPath := filepath.Join(d.Dir, name+".conf")
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freeDNSPort()
		if err != nil {
			t.Fatalf("StartDNSSEC: %s: %v", name, err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := os.WriteFile(confPath, []byte(conf(port)), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := startDaemon(filepath.Join(d.Dir, name+".log"), bin, append(args, confPath)...)
		if err != nil {
			t.Fatalf("StartDNSSEC: start %s: %v", name, err)
		}
		t.Cleanup(func() {
			if err := p.stop(5 * time.Second); err != nil {
				t.Errorf("StartDNSSEC: %s: %v", name, err)
			}
		})
		deadline := time.Now().Add(wait)
		for {
			lastErr = ready(addr)
			if lastErr == nil {
				return addr
			}
			if p.exited() {
				lastErr = fmt.Errorf("exited: %v; last check: %w", p.err, lastErr)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("StartDNSSEC: %s on %s not ready after %v: %v", name, addr, wait, lastErr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Fatalf("StartDNSSEC: %s did not start: %v", name, lastErr)
	return ""
}

// dnsQuery asks addr over UDP with EDNS0 and the DO bit, and with RD and
// AD when recursive (to ask a validating resolver for its verdict).
func dnsQuery(addr, name string, qtype uint16, recursive bool) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = recursive
	q.AuthenticatedData = recursive
	q.SetEdns0(1232, true)
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond, UDPSize: 1232}
	resp, _, err := c.Exchange(q, addr)
	return resp, err
}

func describeAnswer(resp *dns.Msg, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s, AD %v", dns.RcodeToString[resp.Rcode], resp.AuthenticatedData)
}

// usedPorts are the ports freeDNSPort handed out in this process: servers
// started by parallel tests never get the same one.
var usedPorts struct {
	sync.Mutex
	m map[int]bool
}

// freeDNSPort returns a loopback port that was free a moment ago for both
// TCP and UDP, and that this process has not handed out before.
func freeDNSPort() (int, error) {
	usedPorts.Lock()
	defer usedPorts.Unlock()
	if usedPorts.m == nil {
		usedPorts.m = map[int]bool{}
	}
	var lastErr error
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			lastErr = err
			continue
		}
		u.Close()
		if usedPorts.m[port] {
			continue
		}
		usedPorts.m[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP: %v", lastErr)
}

// daemon is a server run in the foreground as a child process.
type daemon struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done closes
	once sync.Once
}

// startDaemon starts bin with its stdout and stderr appended to logPath.
func startDaemon(logPath, bin string, args ...string) (*daemon, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	p := &daemon{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *daemon) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then kills and waits up to
// grace again. An error says it had to be killed or would not die.
func (p *daemon) stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		if p.exited() {
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
			err = fmt.Errorf("still running %v after SIGTERM; killed", grace)
		case <-time.After(grace):
			err = errors.New("still running after SIGKILL")
		}
	})
	return err
}

// LookPath finds a command on PATH or in the sbin directories, which a
// non-login root shell may lack on its PATH (knotd and unbound are in
// /usr/sbin).
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		c := filepath.Join(dir, name)
		if st, e := os.Stat(c); e == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", err
}
