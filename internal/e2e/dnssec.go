package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSSEC is a signed zone served by knot and a validating unbound in front
// of it, both on 127.0.0.1 ports chosen free (the same port for UDP and
// TCP), with their configuration, data and logs under Dir. StartDNSSEC
// starts one for a test.
type DNSSEC struct {
	// Resolver is "127.0.0.1:port" of unbound: point Caliop's dns.servers
	// here. Answers from the signed zone come with the AD bit set.
	Resolver string
	// Auth is "127.0.0.1:port" of knot, authoritative for every zone (for
	// debugging: it sets no AD bit and does not recurse).
	Auth string
	// Dir holds knot.conf, unbound.conf, the zone files, the trust anchors
	// (ta.key) and the logs (knot.log, unbound.log).
	Dir string
	// Zone is the signed zone's apex, lowercase without the trailing dot.
	Zone string
}

// DNSSECZone is an extra zone for DNSSECOptions.
type DNSSECZone struct {
	Name    string   // apex, e.g. "insecure.test"
	Records []string // zone-file lines, as for StartDNSSEC
}

// DNSSECOptions are StartDNSSEC's optional settings.
type DNSSECOptions struct {
	// Insecure zones are served unsigned by the same knot and unbound
	// treats them as insecure (domain-insecure): their answers come with
	// the AD bit clear.
	Insecure []DNSSECZone
	// Bogus zones are signed by knot, but the trust anchor unbound gets for
	// each is a freshly generated key that signs nothing, so every answer
	// from them is bogus: unbound replies SERVFAIL.
	Bogus []DNSSECZone
	// Knotd and Unbound are the server binaries; when empty they are
	// looked up with LookPath.
	Knotd, Unbound string
	// Wait bounds each server's start (knot serving its signed zones,
	// unbound answering with AD set); 10s when zero.
	Wait time.Duration
}

// StartDNSSEC signs zone (its apex, e.g. "example.test") with knot and puts
// a validating unbound in front of it. records are zone-file lines
// (RFC 1035 §5.1), each starting with its owner name, relative to the
// apex or absolute, with an optional TTL (300 by default), e.g.
// "mx.example.test. 300 IN A 127.0.3.1" or "@ IN MX 10 mx". The harness
// adds the SOA, an NS ns.<zone>. and ns.<zone>. A 127.0.0.1; knot adds
// the DNSSEC records (ECDSA P-256, NSEC). At most one DNSSECOptions may
// follow, for insecure and bogus zones served by the same pair.
//
// Names should be under .test: unbound is told that test. is unsigned
// (domain-insecure) and not a locally blocked zone (local-zone nodefault);
// the signed zone is validated from its own trust anchor, its KSK as knot
// published it.
//
// StartDNSSEC waits until unbound answers the apex SOA with the AD bit set
// (and checks that each insecure zone's SOA comes without it and each
// bogus zone's with SERVFAIL), and stops both servers at cleanup; their
// logs go to the test log if the test failed. Any error fails the test.
// It needs knotd and unbound (Debian packages knot and unbound).
func StartDNSSEC(t testing.TB, zone string, records []string, opts ...DNSSECOptions) *DNSSEC {
	t.Helper()
	var o DNSSECOptions
	switch len(opts) {
	case 0:
	case 1:
		o = opts[0]
		// Names are normalised in place: not in the caller's slices.
		o.Insecure, o.Bogus = slices.Clone(o.Insecure), slices.Clone(o.Bogus)
	default:
		t.Fatalf("StartDNSSEC: %d DNSSECOptions, want at most one", len(opts))
	}
	if o.Wait <= 0 {
		o.Wait = 10 * time.Second
	}
	for _, b := range []struct {
		path *string
		name string
	}{{&o.Knotd, "knotd"}, {&o.Unbound, "unbound"}} {
		if *b.path != "" {
			continue
		}
		p, err := LookPath(b.name)
		if err != nil {
			t.Fatalf("StartDNSSEC: %v", err)
		}
		*b.path = p
	}

	d := &DNSSEC{Dir: t.TempDir()}
	main := DNSSECZone{Name: zone, Records: records}
	signed := []*DNSSECZone{&main}
	all := []*DNSSECZone{&main}
	for i := range o.Bogus {
		signed = append(signed, &o.Bogus[i])
		all = append(all, &o.Bogus[i])
	}
	for i := range o.Insecure {
		all = append(all, &o.Insecure[i])
	}
	seen := map[string]bool{}
	for _, z := range all {
		name := strings.ToLower(strings.TrimSuffix(z.Name, "."))
		if _, ok := dns.IsDomainName(name); !ok || name == "" {
			t.Fatalf("StartDNSSEC: invalid zone name %q", z.Name)
		}
		if seen[name] {
			t.Fatalf("StartDNSSEC: zone %s given twice", name)
		}
		seen[name] = true
		z.Name = name
		if err := os.WriteFile(filepath.Join(d.Dir, name+".zone"), []byte(zoneFile(name, z.Records)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.Zone = main.Name

	logs := []string{filepath.Join(d.Dir, "knot.log"), filepath.Join(d.Dir, "unbound.log")}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, f := range logs {
			if b, err := os.ReadFile(f); err == nil {
				if len(b) > 64<<10 {
					b = b[len(b)-64<<10:]
				}
				t.Logf("%s:\n%s", f, b)
			}
		}
	})

	// knot: every zone, signed ones with a policy without rollovers.
	rundir := filepath.Join(d.Dir, "run")
	if len(rundir) > 90 { // knot.sock must fit in sun_path (108 bytes)
		parent := os.TempDir()
		if len(parent) > 70 {
			parent = "/tmp"
		}
		var err error
		if rundir, err = os.MkdirTemp(parent, "knot"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(rundir) })
	} else if err := os.Mkdir(rundir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(d.Dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	knotConf := func(port int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "server:\n    listen: 127.0.0.1@%d\n    rundir: %q\n", port, rundir)
		b.WriteString("    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n")
		b.WriteString("log:\n  - target: stderr\n    any: info\n")
		fmt.Fprintf(&b, "database:\n    storage: %q\n", filepath.Join(d.Dir, "db"))
		b.WriteString("policy:\n  - id: fast\n    algorithm: ecdsap256sha256\n    ksk-lifetime: 0\n    zsk-lifetime: 0\n")
		fmt.Fprintf(&b, "template:\n  - id: default\n    storage: %q\n    zonefile-sync: -1\n", d.Dir)
		b.WriteString("zone:\n")
		for _, z := range all {
			fmt.Fprintf(&b, "  - domain: %s\n    file: %s.zone\n", z.Name, z.Name)
			if slices.Contains(signed, z) {
				b.WriteString("    dnssec-signing: on\n    dnssec-policy: fast\n")
			}
		}
		return b.String()
	}
	var anchors []string
	knotReady := func(addr string) error {
		anchors = anchors[:0]
		for _, z := range signed {
			resp, err := dnsQuery(addr, z.Name, dns.TypeDNSKEY, false)
			if err != nil {
				return err
			}
			var ksks []string
			var sigs bool
			for _, rr := range resp.Answer {
				switch rr := rr.(type) {
				case *dns.DNSKEY:
					if rr.Flags&dns.SEP != 0 {
						ksks = append(ksks, rr.String())
					}
				case *dns.RRSIG:
					sigs = true
				}
			}
			if resp.Rcode != dns.RcodeSuccess || len(ksks) == 0 || !sigs {
				return fmt.Errorf("%s DNSKEY from knot: %s, %d KSK, signed %v", z.Name, dns.RcodeToString[resp.Rcode], len(ksks), sigs)
			}
			if z == &main {
				anchors = append(anchors, ksks...)
				continue
			}
			// A key knot never saw: the bogus zone's signatures match no
			// anchor.
			k := &dns.DNSKEY{
				Hdr:       dns.RR_Header{Name: dns.Fqdn(z.Name), Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
				Flags:     dns.ZONE | dns.SEP,
				Protocol:  3,
				Algorithm: dns.ECDSAP256SHA256,
			}
			if _, err := k.Generate(256); err != nil {
				return err
			}
			anchors = append(anchors, k.String())
		}
		for _, z := range o.Insecure {
			resp, err := dnsQuery(addr, z.Name, dns.TypeSOA, false)
			if err != nil {
				return err
			}
			if resp.Rcode != dns.RcodeSuccess || !resp.Authoritative {
				return fmt.Errorf("%s SOA from knot: %s, authoritative %v", z.Name, dns.RcodeToString[resp.Rcode], resp.Authoritative)
			}
		}
		return nil
	}
	d.Auth = d.startServer(t, "knot", o.Wait, knotConf, knotReady, o.Knotd, "-c")

	// unbound: validating, a stub zone per zone pointing at knot.
	if err := os.WriteFile(filepath.Join(d.Dir, "ta.key"), []byte(strings.Join(anchors, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unboundConf := func(port int) string {
		var b strings.Builder
		b.WriteString("server:\n")
		for _, l := range []string{
			"verbosity: 1", "val-log-level: 2", "use-syslog: no", `logfile: ""`, "log-time-ascii: yes",
			fmt.Sprintf("interface: 127.0.0.1@%d", port), fmt.Sprintf("port: %d", port),
			"interface-automatic: no", "outgoing-interface: 127.0.0.1", "do-ip4: yes", "do-ip6: no",
			"do-udp: yes", "do-tcp: yes", "so-reuseport: no", "num-threads: 1", "outgoing-range: 64",
			"num-queries-per-thread: 32", "do-daemonize: no", `username: ""`, `chroot: ""`,
			fmt.Sprintf("directory: %q", d.Dir), `pidfile: ""`, "do-not-query-localhost: no",
			"qname-minimisation: no", "trust-anchor-signaling: no", fmt.Sprintf("trust-anchor-file: %q", filepath.Join(d.Dir, "ta.key")),
			`local-zone: "test." nodefault`, `domain-insecure: "test."`, "access-control: 127.0.0.0/8 allow",
		} {
			fmt.Fprintf(&b, "    %s\n", l)
		}
		for _, z := range o.Insecure {
			fmt.Fprintf(&b, "    domain-insecure: %q\n", z.Name+".")
		}
		b.WriteString("remote-control:\n    control-enable: no\n")
		for _, z := range all {
			fmt.Fprintf(&b, "stub-zone:\n    name: %q\n    stub-addr: %s\n", z.Name+".", strings.Replace(d.Auth, ":", "@", 1))
		}
		return b.String()
	}
	unboundReady := func(addr string) error {
		resp, err := dnsQuery(addr, main.Name, dns.TypeSOA, true)
		if err != nil {
			return err
		}
		if resp.Rcode != dns.RcodeSuccess || !resp.AuthenticatedData {
			return fmt.Errorf("%s SOA from unbound: %s, AD %v", main.Name, dns.RcodeToString[resp.Rcode], resp.AuthenticatedData)
		}
		return nil
	}
	d.Resolver = d.startServer(t, "unbound", o.Wait, unboundConf, unboundReady, o.Unbound, "-c")

	// The contract for the other zones, checked once.
	for _, z := range o.Insecure {
		resp, err := dnsQuery(d.Resolver, z.Name, dns.TypeSOA, true)
		if err != nil || resp.Rcode != dns.RcodeSuccess || resp.AuthenticatedData {
			t.Fatalf("StartDNSSEC: insecure zone %s: SOA from unbound: %v", z.Name, describeAnswer(resp, err))
		}
	}
	for _, z := range o.Bogus {
		resp, err := dnsQuery(d.Resolver, z.Name, dns.TypeSOA, true)
		if err != nil || resp.Rcode != dns.RcodeServerFailure {
			t.Fatalf("StartDNSSEC: bogus zone %s: SOA from unbound: %v", z.Name, describeAnswer(resp, err))
		}
	}
	return d
}

// zoneFile renders a zone's file: $ORIGIN, $TTL 300, SOA, NS, the NS's
// address, then records.
func zoneFile(name string, records []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s.\n$TTL 300\n", name)
	fmt.Fprintf(&b, "@ IN SOA ns.%s. hostmaster.%s. 1 3600 900 604800 60\n", name, name)
	fmt.Fprintf(&b, "@ IN NS ns.%s.\nns.%s. IN A 127.0.0.1\n", name, name)
	for _, r := range records {
		b.WriteString(r)
		b.WriteString("\n")
	}
	return b.String()
}

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
