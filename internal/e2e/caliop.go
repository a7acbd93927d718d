// Package e2e runs the caliop binary as a subprocess next to real
// components (Postfix, smtp-source) on 127.0.0.0/8.
//
// The tests in this package start a real Postfix as the sending MTA; they
// skip when Postfix is not installed unless CALIOP_E2E=1, which turns a
// missing component into a failure (CI sets it, see .ci/run). The exported
// helpers build, configure, start and stop Caliop; the end-to-end tests
// and the benchmark in cmd/caliop-bench share them.
package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Package is the import path of Caliop's command.
const Package = "github.com/caliop/relay/cmd/caliop"

// Build compiles Caliop into out with the go command found on PATH (go
// test puts GOROOT/bin first). It must run inside the module.
func Build(ctx context.Context, out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("e2e: build caliop: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gobin, "build", "-o", out, Package)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("e2e: go build %s: %w\n%s", Package, err, b)
	}
	return nil
}

// Config is the part of Caliop's configuration the end-to-end runs set.
// Every listener is explicit so that runs never collide on the defaults.
type Config struct {
	Hostname        string        // EHLO and Received; default relay.test
	DataDir         string        // required
	DNS             string        // the only DNS server, host:port
	SMTP            string        // outbound SMTP listener, "" for none
	LMTP            string        // outbound LMTP listener, "" for none
	Metrics         string        // required: the default port may be taken
	MXPort          int           // port dialled on the MX address
	Default         string        // encrypt | verify; default encrypt
	DeliveryTimeout time.Duration // default 30s
	LogLevel        string        // default info
	Redis           string        // cluster.redis, host:port; "" for the embedded store
	// Inbound is the inbound: section (the port-25 side in front of the
	// MTA); it is written only when Inbound.Listen is set.
	Inbound Inbound
	// Env is added to the process's environment (SSL_CERT_FILE: the
	// roots of a test CA).
	Env []string
}

// Inbound is the part of Caliop's inbound: section the end-to-end runs
// set. Either Cert and Key or ACME gives the certificates.
type Inbound struct {
	Listen   string   // inbound.listen, host:port; "" leaves the section out
	Hostname string   // inbound.hostname (greeting, certificate, MTA-STS mx); "" for the top-level hostname
	Domains  []string // inbound.domains: the only recipient domains accepted
	NextHop  string   // inbound.next_hop: the MTA's smtpd (XCLIENT), host:port
	// NoXCLIENT writes inbound.next_hop_xclient: false.
	NoXCLIENT bool
	// HTTPSListen is inbound.https_listen, the MTA-STS policy host that
	// also answers TLS-ALPN-01; "" disables it (it is always written, so
	// that the default :443 never applies).
	HTTPSListen string
	Cert, Key   string       // inbound.tls.cert and inbound.tls.key, PEM files
	ACME        *InboundACME // inbound.tls.acme; nil for Cert and Key
}

// InboundACME is inbound.tls.acme: certificates from an ACME CA.
type InboundACME struct {
	Email       string // inbound.tls.acme.email; "" for none
	Directory   string // inbound.tls.acme.directory, the directory URL
	Challenge   string // inbound.tls.acme.challenge: tls-alpn-01 (the default) or http-01
	HTTPListen  string // inbound.tls.acme.http_listen, for http-01; "" for Caliop's default
	DirectoryCA string // inbound.tls.acme.directory_ca: PEM roots for the directory's HTTPS; "" for the system's
}

// YAML renders c as a configuration file.
func (c Config) YAML() string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	timeout := c.DeliveryTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	var b strings.Builder
	fmt.Fprintf(&b, "hostname: %s\n", def(c.Hostname, "relay.test"))
	fmt.Fprintf(&b, "data_dir: %q\n", c.DataDir)
	fmt.Fprintf(&b, "dns: {servers: [%q]}\n", c.DNS)
	b.WriteString("outbound:\n")
	if c.SMTP != "" {
		fmt.Fprintf(&b, "  smtp: %q\n", c.SMTP)
	} else {
		b.WriteString("  smtp: \"\"\n")
	}
	if c.LMTP != "" {
		fmt.Fprintf(&b, "  lmtp: %q\n", c.LMTP)
	} else {
		b.WriteString("  lmtp: \"\"\n")
	}
	b.WriteString("  trusted_networks: [\"127.0.0.0/8\"]\n")
	fmt.Fprintf(&b, "  mx_port: %d\n", c.MXPort)
	fmt.Fprintf(&b, "  default: %s\n", def(c.Default, "encrypt"))
	fmt.Fprintf(&b, "  delivery_timeout: %s\n", timeout)
	b.WriteString("  reuse: {idle: 10s}\n") // max_messages: the default
	fmt.Fprintf(&b, "metrics: {listen: %q}\n", c.Metrics)
	fmt.Fprintf(&b, "log: {level: %s, format: json}\n", def(c.LogLevel, "info"))
	if c.Redis != "" {
		fmt.Fprintf(&b, "cluster: {redis: \"redis://%s/0\"}\n", c.Redis)
	}
	c.Inbound.yaml(&b)
	return b.String()
}

// yaml appends the inbound: section when Listen is set; keys left empty
// are not written (Caliop's defaults apply), except https_listen.
func (in Inbound) yaml(b *strings.Builder) {
	if in.Listen == "" {
		return
	}
	opt := func(indent, key, v string) {
		if v != "" {
			fmt.Fprintf(b, "%s%s: %q\n", indent, key, v)
		}
	}
	b.WriteString("inbound:\n")
	opt("  ", "listen", in.Listen)
	opt("  ", "hostname", in.Hostname)
	if len(in.Domains) > 0 {
		b.WriteString("  domains:\n")
		for _, d := range in.Domains {
			fmt.Fprintf(b, "    - %q\n", d)
		}
	}
	opt("  ", "next_hop", in.NextHop)
	if in.NoXCLIENT {
		b.WriteString("  next_hop_xclient: false\n")
	}
	fmt.Fprintf(b, "  https_listen: %q\n", in.HTTPSListen)
	b.WriteString("  tls:\n")
	opt("    ", "cert", in.Cert)
	opt("    ", "key", in.Key)
	if a := in.ACME; a != nil && *a == (InboundACME{}) {
		b.WriteString("    acme: {}\n")
	} else if a != nil {
		b.WriteString("    acme:\n")
		opt("      ", "email", a.Email)
		opt("      ", "directory", a.Directory)
		opt("      ", "challenge", a.Challenge)
		opt("      ", "http_listen", a.HTTPListen)
		opt("      ", "directory_ca", a.DirectoryCA)
	}
}

// FreeAddr returns 127.0.0.1:port with a port that was free a moment ago
// and that it has not returned before in this process: the kernel may
// hand the same ephemeral port out again at once, and two listeners of
// one test must not be given one port.
func FreeAddr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := l.Addr().String()
		l.Close()
		handedOutMu.Lock()
		seen := handedOut[addr]
		handedOut[addr] = true
		handedOutMu.Unlock()
		if !seen {
			return addr, nil
		}
	}
	return "", errors.New("e2e: no fresh free port")
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

// Process is a running caliop serve.
type Process struct {
	Config     Config
	ConfigPath string
	// Output is what the process wrote, when the starter kept it.
	Output *LockedBuffer

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, set before done closes
	once sync.Once
}

// Start writes cfg to dir/caliop.yaml, starts bin serve with it (output to
// out) and waits up to 15s until every configured listener accepts.
func Start(bin, dir string, cfg Config, out io.Writer) (*Process, error) {
	p := &Process{Config: cfg, ConfigPath: filepath.Join(dir, "caliop.yaml"), done: make(chan struct{})}
	if err := os.WriteFile(p.ConfigPath, []byte(cfg.YAML()), 0o644); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, "serve", "--config", p.ConfigPath)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if len(cfg.Env) > 0 {
		p.cmd.Env = append(os.Environ(), cfg.Env...)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("e2e: start caliop: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{cfg.SMTP, cfg.LMTP, cfg.Metrics} {
		if addr == "" {
			continue
		}
		if err := p.waitListening(addr, deadline); err != nil {
			p.Stop(5 * time.Second)
			return nil, err
		}
	}
	return p, nil
}

func (p *Process) waitListening(addr string, deadline time.Time) error {
	for {
		select {
		case <-p.done:
			return fmt.Errorf("e2e: caliop exited before listening on %s: %v", addr, p.err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("e2e: caliop not listening on %s: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and with what.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to grace for a clean exit, then kills. It
// returns an error if the process had to be killed or exited with a
// failure; calling it again returns nil.
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		if exited, _ := p.Exited(); exited {
			if p.err != nil {
				err = fmt.Errorf("e2e: caliop exited early: %w", p.err)
			}
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			if p.err != nil {
				err = fmt.Errorf("e2e: caliop exit after SIGTERM: %w", p.err)
			}
		case <-time.After(grace):
			p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("e2e: caliop still running %v after SIGTERM; killed", grace)
		}
	})
	return err
}

// PeakRSS returns the process's peak resident set size in bytes (VmHWM
// in /proc/PID/status). Call it before Stop.
func (p *Process) PeakRSS() (int64, error) {
	return ProcStatusBytes(p.Pid(), "VmHWM")
}

// ProcStatusBytes reads a "kB" field of /proc/PID/status, in bytes.
func ProcStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("e2e: /proc/%d/status: %s: unexpected %q", pid, field, rest)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		return kb << 10, err
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("e2e: /proc/" + strconv.Itoa(pid) + "/status has no " + field)
}

// LockedBuffer is an io.Writer safe for a subprocess's stdout and stderr
// at once, keeping the last Max bytes (all when Max is 0).
type LockedBuffer struct {
	Max int

	mu  sync.Mutex
	buf []byte
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if b.Max > 0 && len(b.buf) > b.Max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.Max:]...)
	}
	return len(p), nil
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
