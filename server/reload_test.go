package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// relayConfig is the part of a test configuration that varies.
type relayConfig struct {
	hostname string
	dataDir  string
	dns      string // DNS server, host:port
	mxPort   int
	metrics  string // metrics.listen
	level    string // log.level; "" info
	extra    string // appended as is
}

func (c relayConfig) yaml() string {
	level := c.level
	if level == "" {
		level = "info"
	}
	return fmt.Sprintf(`hostname: %s
data_dir: %q
dns: {servers: [%q]}
outbound:
  smtp: "127.0.0.1:0"
  lmtp: ""
  trusted_networks: ["127.0.0.0/8"]
  mx_port: %d
  delivery_timeout: 20s
pgp: {mode: "off"}
metrics: {listen: %q}
log: {level: %s}
%s`, c.hostname, c.dataDir, c.dns, c.mxPort, c.metrics, level, c.extra)
}

// relayRun is `caliop serve` run in the test process from a file, with
// its log observed and signals sent through a channel.
type relayRun struct {
	t     *testing.T
	path  string
	sig   chan os.Signal
	logs  *observer.ObservedLogs
	level zap.AtomicLevel
	done  chan error
}

func startRelay(t *testing.T, c relayConfig) *relayRun {
	t.Helper()
	r := &relayRun{t: t, path: filepath.Join(t.TempDir(), "caliop.yml"), sig: make(chan os.Signal, 1), done: make(chan error, 1)}
	r.write(c.yaml())
	cfg, err := config.Load(r.path)
	if err != nil {
		t.Fatal(err)
	}
	r.level, err = zap.ParseAtomicLevel(cfg.Log.Level)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(r.level)
	r.logs = logs
	log := zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	load := func() (*config.Config, error) { return config.Load(r.path) }
	go func() { r.done <- Run(cfg, load, log, r.level, r.sig) }()
	t.Cleanup(func() {
		r.sig <- syscall.SIGTERM
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve still running 30s after SIGTERM")
		}
	})
	return r
}

func (r *relayRun) write(yaml string) {
	r.t.Helper()
	if err := os.WriteFile(r.path, []byte(yaml), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// reload rewrites the file and sends SIGHUP.
func (r *relayRun) reload(c relayConfig) { r.reloadText(c.yaml()) }

func (r *relayRun) reloadText(yaml string) {
	r.t.Helper()
	r.write(yaml)
	r.sig <- syscall.SIGHUP
}

// waitLog waits until n entries with message msg were logged, and
// returns the last one.
func (r *relayRun) waitLog(msg string, n int) observer.LoggedEntry {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if es := r.logs.FilterMessage(msg).All(); len(es) >= n {
			return es[len(es)-1]
		}
		select {
		case err := <-r.done:
			r.t.Fatalf("serve ended (%v) before logging %q", err, msg)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("no %q logged after 15s", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addr is where service key listens (the last "listening" line for it).
func (r *relayRun) addr(key string) string {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		es := r.logs.FilterMessage("listening").FilterField(zap.String("service", key)).All()
		if len(es) > 0 {
			return es[len(es)-1].ContextMap()["addr"].(string)
		}
		select {
		case err := <-r.done:
			r.t.Fatalf("serve ended (%v) before %s listened", err, key)
		default:
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s not listening after 15s", key)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// smtpClient is a line-level SMTP client that checks every reply.
type smtpClient struct {
	t *testing.T
	*textproto.Conn
}

// dialSMTP connects and reads the greeting; it returns the client and
// the greeting's text.
func dialSMTP(t *testing.T, addr string) (*smtpClient, string) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := &smtpClient{t, textproto.NewConn(nc)}
	t.Cleanup(func() { c.Close() })
	_, msg, err := c.ReadResponse(220)
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c, msg
}

// cmd sends line and wants code; it returns the reply text.
func (c *smtpClient) cmd(code int, format string, args ...any) string {
	c.t.Helper()
	if err := c.PrintfLine(format, args...); err != nil {
		c.t.Fatal(err)
	}
	_, msg, err := c.ReadResponse(code)
	if err != nil {
		c.t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
	return msg
}

// TestReloadBrokenConfig: a SIGHUP with a configuration that does not
// parse, does not validate, names a certificate that does not load or an
// address that cannot be bound logs why at error level and keeps the
// running configuration: the listener answers with the old host name and
// a session opened before the SIGHUP goes on. The next SIGHUP with a good
// file applies it.
func TestReloadBrokenConfig(t *testing.T) {
	dns := dnstest.Start(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Close() }) // after the parallel subtests
	tests := []struct {
		name   string
		config func(t *testing.T, c relayConfig) string
		reason string // in the logged error
	}{
		{"invalid YAML", func(*testing.T, relayConfig) string { return "hostname: [new.test\n" }, "yaml"},
		{"invalid value", func(_ *testing.T, c relayConfig) string {
			c.hostname, c.extra = "new.test", "tlsrpt: {enabled: maybe}\n"
			return c.yaml()
		}, "tlsrpt.enabled"},
		{"unknown log level", func(_ *testing.T, c relayConfig) string {
			c.hostname, c.level = "new.test", "loud"
			return c.yaml()
		}, "log.level"},
		{"certificate that does not load", func(t *testing.T, c relayConfig) string {
			cert, key := filepath.Join(t.TempDir(), "cert.pem"), filepath.Join(t.TempDir(), "key.pem")
			os.WriteFile(cert, []byte("not a certificate\n"), 0o600)
			os.WriteFile(key, []byte("not a key\n"), 0o600)
			c.hostname = "new.test"
			c.extra = fmt.Sprintf("inbound:\n  listen: \"127.0.0.1:0\"\n  https_listen: \"\"\n  domains: [in.test]\n  tls: {cert: %q, key: %q}\n", cert, key)
			return c.yaml()
		}, "inbound.tls"},
		{"address in use", func(_ *testing.T, c relayConfig) string {
			c.hostname, c.metrics = "new.test", busy.Addr().String()
			return c.yaml()
		}, "metrics.listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := relayConfig{hostname: "old.test", dataDir: t.TempDir(), dns: dns.Addr, mxPort: 25, metrics: "127.0.0.1:0"}
			r := startRelay(t, c)
			addr, metricsAddr := r.addr("outbound.smtp"), r.addr("metrics.listen")
			before, greeting := dialSMTP(t, addr)
			if !strings.HasPrefix(greeting, "old.test ") {
				t.Fatalf("greeting %q", greeting)
			}
			before.cmd(250, "EHLO client.test")

			r.reloadText(tc.config(t, c))
			e := r.waitLog("reload failed, keeping the running configuration", 1)
			if e.Level != zapcore.ErrorLevel {
				t.Errorf("logged at %v, want error", e.Level)
			}
			if why, _ := e.ContextMap()["error"].(string); !strings.Contains(why, tc.reason) {
				t.Errorf("logged reason %q lacks %q", why, tc.reason)
			}
			if n := r.logs.FilterMessage("configuration reloaded").Len(); n != 0 {
				t.Errorf("%d reloads logged", n)
			}
			// The session opened before goes on.
			before.cmd(250, "EHLO client.test")
			before.cmd(250, "MAIL FROM:<alice@src.test>")
			before.cmd(250, "RSET")
			// So do the listeners.
			if _, greeting := dialSMTP(t, addr); !strings.HasPrefix(greeting, "old.test ") {
				t.Errorf("new session after the failed reload: greeting %q", greeting)
			}
			if body := get(t, metricsAddr, "/healthz"); body != "ok\n" {
				t.Errorf("/healthz after the failed reload: %q", body)
			}
			if n := r.logs.FilterMessage("listening").Len(); n != 2 {
				t.Errorf("%d listening lines, want the 2 of the start", n)
			}
			// Once the file is mended, the next SIGHUP applies it.
			c.hostname = "new.test"
			r.reload(c)
			r.waitLog("configuration reloaded", 1)
			if _, greeting := dialSMTP(t, addr); !strings.HasPrefix(greeting, "new.test ") {
				t.Errorf("greeting after the mended reload %q", greeting)
			}
		})
	}
}

// TestReloadKeepsConnections: a reload that changes the host name
// applies to new sessions, while a session in the middle of a
// transaction (recipient accepted) finishes it under the configuration
// it started with: its message reaches the MX, received by the old name.
// So does an idle session (an MTA's cached connection) that starts a
// transaction after the reload. Meanwhile the listener refuses no
// connection.
func TestReloadKeepsConnections(t *testing.T) {
	dns := dnstest.Start(t)
	ca := testpki.NewCA(t)
	mx := mxtest.Start(t, "mx.dest.test", ca, mxtest.Behavior{})
	_, port, _ := net.SplitHostPort(mx.Addr)
	var mxPort int
	fmt.Sscan(port, &mxPort)
	dns.Add("dest.test. 60 IN MX 10 mx.dest.test.", "mx.dest.test. 60 IN A 127.0.0.1")
	c := relayConfig{hostname: "old.test", dataDir: t.TempDir(), dns: dns.Addr, mxPort: mxPort, metrics: "127.0.0.1:0"}
	r := startRelay(t, c)
	addr := r.addr("outbound.smtp")

	inFlight, greeting := dialSMTP(t, addr)
	if !strings.HasPrefix(greeting, "old.test ") {
		t.Fatalf("greeting %q", greeting)
	}
	inFlight.cmd(250, "EHLO client.test")
	inFlight.cmd(250, "MAIL FROM:<alice@src.test>")
	inFlight.cmd(250, "RCPT TO:<bob@dest.test>")
	idle, _ := dialSMTP(t, addr)
	idle.cmd(250, "EHLO client.test")

	// Dial without pause while the reload happens.
	var dials, refused, oldNames, newNames atomic.Int64
	stop := make(chan struct{})
	dialed := make(chan struct{})
	go func() {
		defer close(dialed)
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			dials.Add(1)
			name, err := greetingOf(addr)
			switch {
			case err != nil:
				refused.Add(1)
				t.Logf("dial %d: %v", i, err)
			case name == "old.test":
				oldNames.Add(1)
			case name == "new.test":
				newNames.Add(1)
			default:
				refused.Add(1)
				t.Logf("dial %d: greeting from %q", i, name)
			}
		}
	}()
	for i := 0; oldNames.Load() == 0 && i < 1000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	c.hostname = "new.test"
	r.reload(c)
	e := r.waitLog("configuration reloaded", 1)
	// The TLS-RPT names default from the hostname, so they change with it.
	if changed := fmt.Sprint(e.ContextMap()["changed"]); changed != "[hostname tlsrpt.organization tlsrpt.contact tlsrpt.from]" {
		t.Errorf("changed %v, want hostname and the TLS-RPT names derived from it", changed)
	}
	for i := 0; newNames.Load() < 20 && i < 1000; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	<-dialed
	t.Logf("%d dials during the reload: %d old, %d new", dials.Load(), oldNames.Load(), newNames.Load())
	if refused.Load() != 0 || oldNames.Load() == 0 || newNames.Load() == 0 {
		t.Errorf("%d dials: %d failed, %d greeted by old.test, %d by new.test; want none failed and both names", dials.Load(), refused.Load(), oldNames.Load(), newNames.Load())
	}

	// A new session has the new name.
	fresh, greeting := dialSMTP(t, addr)
	if !strings.HasPrefix(greeting, "new.test ") {
		t.Errorf("greeting after the reload %q", greeting)
	}
	fresh.cmd(250, "EHLO client.test")
	fresh.cmd(221, "QUIT")

	// The session of before finishes its transaction.
	inFlight.cmd(354, "DATA")
	w := inFlight.DotWriter()
	io.WriteString(w, "From: alice@src.test\r\nTo: bob@dest.test\r\nSubject: across a reload\r\n\r\nsent before, delivered after\r\n")
	w.Close()
	if _, msg, err := inFlight.ReadResponse(250); err != nil {
		t.Fatalf("DATA after the reload: %v (%s)", err, msg)
	}
	inFlight.cmd(221, "QUIT")
	// The idle session sends a message now.
	idle.cmd(250, "MAIL FROM:<carol@src.test>")
	idle.cmd(250, "RCPT TO:<dave@dest.test>")
	idle.cmd(354, "DATA")
	w = idle.DotWriter()
	io.WriteString(w, "From: carol@src.test\r\nTo: dave@dest.test\r\nSubject: on a cached connection\r\n\r\nidle at the reload\r\n")
	w.Close()
	if _, msg, err := idle.ReadResponse(250); err != nil {
		t.Fatalf("DATA on the idle session after the reload: %v (%s)", err, msg)
	}
	msgs := mx.WaitMessages(t, 2, 10*time.Second)
	for i, want := range []struct{ from, to, body string }{
		{"alice@src.test", "bob@dest.test", "sent before, delivered after\r\n"},
		{"carol@src.test", "dave@dest.test", "idle at the reload\r\n"},
	} {
		m := msgs[i]
		if m.From != want.from || strings.Join(m.To, ",") != want.to || !m.TLS {
			t.Errorf("MX got %q → %v, TLS %v; want %s → %s", m.From, m.To, m.TLS, want.from, want.to)
		}
		if got := string(m.Data); !strings.Contains(got, want.body) || !strings.Contains(got, "by old.test (Caliop)") {
			t.Errorf("delivered:\n%s", got)
		}
	}
	// Their generation retires once the sessions end.
	if n := r.logs.FilterMessage("previous configuration retired").Len(); n != 0 {
		t.Errorf("retired with a session open")
	}
	idle.cmd(221, "QUIT")
	if e := r.waitLog("previous configuration retired", 1); e.ContextMap()["hostname"] != "old.test" {
		t.Errorf("retired %v", e.ContextMap())
	}
}

// greetingOf connects to addr, reads the greeting and returns the host
// name it starts with.
func greetingOf(addr string) (string, error) {
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return "", err
	}
	io.WriteString(nc, "QUIT\r\n")
	code, rest, _ := strings.Cut(line, " ")
	if code != "220" {
		return "", fmt.Errorf("greeting %q", line)
	}
	name, _, _ := strings.Cut(rest, " ")
	return name, nil
}

// TestReloadMovesMetrics: a reload that moves metrics.listen stops
// answering on the old address and answers /healthz on the new one; the
// log level changes with it, and a change of data_dir is reported as
// needing a restart.
func TestReloadMovesMetrics(t *testing.T) {
	dns := dnstest.Start(t)
	c := relayConfig{hostname: "relay.test", dataDir: t.TempDir(), dns: dns.Addr, mxPort: 25, metrics: "127.0.0.1:0"}
	r := startRelay(t, c)
	oldAddr, smtpAddr := r.addr("metrics.listen"), r.addr("outbound.smtp")
	if body := get(t, oldAddr, "/healthz"); body != "ok\n" {
		t.Fatalf("/healthz %q", body)
	}
	if r.level.Enabled(zapcore.DebugLevel) {
		t.Fatal("debug enabled at level info")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newAddr := l.Addr().String()
	l.Close()

	c.metrics, c.level, c.dataDir = newAddr, "debug", t.TempDir()
	r.reload(c)
	e := r.waitLog("configuration reloaded", 1)
	if changed := fmt.Sprint(e.ContextMap()["changed"]); changed != "[metrics.listen log.level]" {
		t.Errorf("changed %s", changed)
	}
	if e := r.waitLog("not applied until restart", 1); fmt.Sprint(e.ContextMap()["keys"]) != "[data_dir]" {
		t.Errorf("restart keys %v", e.ContextMap()["keys"])
	}
	if body := get(t, newAddr, "/healthz"); body != "ok\n" {
		t.Errorf("/healthz on %s: %q", newAddr, body)
	}
	if body := get(t, newAddr, "/metrics"); !strings.Contains(body, "caliop_") {
		t.Errorf("/metrics on %s lacks caliop_ series", newAddr)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get("http://" + oldAddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("old address %s still answers: %s", oldAddr, resp.Status)
	}
	if !r.level.Enabled(zapcore.DebugLevel) {
		t.Error("log.level debug not applied")
	}
	if got := r.addr("outbound.smtp"); got != smtpAddr {
		t.Errorf("outbound.smtp moved from %s to %s", smtpAddr, got)
	}
	if n := r.logs.FilterMessage("listening").FilterField(zap.String("service", "outbound.smtp")).Len(); n != 1 {
		t.Errorf("outbound.smtp bound %d times, want once", n)
	}
	r.waitLog("previous configuration retired", 1)
}

// get fetches path from addr without keeping the connection, and wants 200.
func get(t *testing.T, addr, path string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s%s: %s %s", addr, path, resp.Status, b)
	}
	return string(b)
}
