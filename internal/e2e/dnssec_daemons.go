package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// startKnot serves every zone from knot, the signed ones with a policy
// without rollovers, and keeps their trust anchors: the main zone's KSKs,
// and for each bogus zone a key knot never saw.
func (b *dnssecBuild) startKnot() {
	rundir := filepath.Join(b.d.Dir, "run")
	if len(rundir) > 90 { // knot.sock must fit in sun_path (108 bytes)
		parent := os.TempDir()
		if len(parent) > 70 {
			parent = "/tmp"
		}
		var err error
		if rundir, err = os.MkdirTemp(parent, "knot"); err != nil {
			b.t.Fatal(err)
		}
		b.t.Cleanup(func() { os.RemoveAll(rundir) })
	} else if err := os.Mkdir(rundir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b.d.Dir, "db"), 0o700); err != nil {
		b.t.Fatal(err)
	}
	knotConf := func(port int) string {
		var sb strings.Builder
		fmt.Fprintf(&sb, "server:\n    listen: 127.0.0.1@%d\n    rundir: %q\n", port, rundir)
		sb.WriteString("    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n")
		sb.WriteString("log:\n  - target: stderr\n    any: info\n")
		fmt.Fprintf(&sb, "database:\n    storage: %q\n", filepath.Join(b.d.Dir, "db"))
		sb.WriteString("policy:\n  - id: fast\n    algorithm: ecdsap256sha256\n    ksk-lifetime: 0\n    zsk-lifetime: 0\n")
		fmt.Fprintf(&sb, "template:\n  - id: default\n    storage: %q\n    zonefile-sync: -1\n", b.d.Dir)
		sb.WriteString("zone:\n")
		for _, z := range b.all {
			fmt.Fprintf(&sb, "  - domain: %s\n    file: %s.zone\n", z.Name, z.Name)
			if slices.Contains(b.signed, z) {
				sb.WriteString("    dnssec-signing: on\n    dnssec-policy: fast\n")
			}
		}
		return sb.String()
	}
	b.d.Auth = b.d.startServer(b.t, "knot", b.o.Wait, knotConf, b.knotReady, b.o.Knotd, "-c")

}

// knotReady checks that knot serves each signed zone with its keys and
// signatures, and each insecure zone, and collects the trust anchors.
func (b *dnssecBuild) knotReady(addr string) error {
	b.anchors = b.anchors[:0]
	for _, z := range b.signed {
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
		if z == b.main {
			b.anchors = append(b.anchors, ksks...)
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
		b.anchors = append(b.anchors, k.String())
	}
	for _, z := range b.o.Insecure {
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

// startUnbound runs a validating unbound with a stub zone per zone
// pointing at knot.
func (b *dnssecBuild) startUnbound() {
	if err := os.WriteFile(filepath.Join(b.d.Dir, "ta.key"), []byte(strings.Join(b.anchors, "\n")+"\n"), 0o644); err != nil {
		b.t.Fatal(err)
	}
	unboundConf := func(port int) string {
		var sb strings.Builder
		sb.WriteString("server:\n")
		for _, l := range []string{
			"verbosity: 1", "val-log-level: 2", "use-syslog: no", `logfile: ""`, "log-time-ascii: yes",
			fmt.Sprintf("interface: 127.0.0.1@%d", port), fmt.Sprintf("port: %d", port),
			"interface-automatic: no", "outgoing-interface: 127.0.0.1", "do-ip4: yes", "do-ip6: no",
			"do-udp: yes", "do-tcp: yes", "so-reuseport: no", "num-threads: 1", "outgoing-range: 64",
			"num-queries-per-thread: 32", "do-daemonize: no", `username: ""`, `chroot: ""`,
			fmt.Sprintf("directory: %q", b.d.Dir), `pidfile: ""`, "do-not-query-localhost: no",
			"qname-minimisation: no", "trust-anchor-signaling: no", fmt.Sprintf("trust-anchor-file: %q", filepath.Join(b.d.Dir, "ta.key")),
			`local-zone: "test." nodefault`, `domain-insecure: "test."`, "access-control: 127.0.0.0/8 allow",
		} {
			fmt.Fprintf(&sb, "    %s\n", l)
		}
		for _, z := range b.o.Insecure {
			fmt.Fprintf(&sb, "    domain-insecure: %q\n", z.Name+".")
		}
		sb.WriteString("remote-control:\n    control-enable: no\n")
		for _, z := range b.all {
			fmt.Fprintf(&sb, "stub-zone:\n    name: %q\n    stub-addr: %s\n", z.Name+".", strings.Replace(b.d.Auth, ":", "@", 1))
		}
		return sb.String()
	}
	unboundReady := func(addr string) error {
		resp, err := dnsQuery(addr, b.main.Name, dns.TypeSOA, true)
		if err != nil {
			return err
		}
		if resp.Rcode != dns.RcodeSuccess || !resp.AuthenticatedData {
			return fmt.Errorf("%s SOA from unbound: %s, AD %v", b.main.Name, dns.RcodeToString[resp.Rcode], resp.AuthenticatedData)
		}
		return nil
	}
	b.d.Resolver = b.d.startServer(b.t, "unbound", b.o.Wait, unboundConf, unboundReady, b.o.Unbound, "-c")

}
