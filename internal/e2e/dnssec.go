package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	o.defaults(t)
	b := &dnssecBuild{t: t, o: o, d: &DNSSEC{Dir: t.TempDir()}, main: &DNSSECZone{Name: zone, Records: records}}
	b.writeZones()
	b.logOnFailure()
	b.startKnot()
	b.startUnbound()
	b.checkContract()
	return b.d
}

// defaults fills in the wait and the daemons' paths.
func (o *DNSSECOptions) defaults(t testing.TB) {
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
}

// dnssecBuild is StartDNSSEC's work in progress.
type dnssecBuild struct {
	t       testing.TB
	o       DNSSECOptions
	d       *DNSSEC
	main    *DNSSECZone
	signed  []*DNSSECZone // the main zone and the bogus ones
	all     []*DNSSECZone // signed and insecure
	anchors []string      // trust anchors for unbound, once knot runs
}

// writeZones checks the zone names and writes every zone file.
func (b *dnssecBuild) writeZones() {
	t, o := b.t, b.o
	b.signed = []*DNSSECZone{b.main}
	b.all = []*DNSSECZone{b.main}
	for i := range o.Bogus {
		b.signed = append(b.signed, &o.Bogus[i])
		b.all = append(b.all, &o.Bogus[i])
	}
	for i := range o.Insecure {
		b.all = append(b.all, &o.Insecure[i])
	}
	seen := map[string]bool{}
	for _, z := range b.all {
		name := strings.ToLower(strings.TrimSuffix(z.Name, "."))
		if _, ok := dns.IsDomainName(name); !ok || name == "" {
			t.Fatalf("StartDNSSEC: invalid zone name %q", z.Name)
		}
		if seen[name] {
			t.Fatalf("StartDNSSEC: zone %s given twice", name)
		}
		seen[name] = true
		z.Name = name
		if err := os.WriteFile(filepath.Join(b.d.Dir, name+".zone"), []byte(zoneFile(name, z.Records)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b.d.Zone = b.main.Name
}

// logOnFailure shows the daemons' logs when the test fails.
func (b *dnssecBuild) logOnFailure() {
	t := b.t
	logs := []string{filepath.Join(b.d.Dir, "knot.log"), filepath.Join(b.d.Dir, "unbound.log")}
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
}

// checkContract checks, once, what the other zones promise: insecure
// ones answer without AD, bogus ones SERVFAIL.
func (b *dnssecBuild) checkContract() {
	for _, z := range b.o.Insecure {
		resp, err := dnsQuery(b.d.Resolver, z.Name, dns.TypeSOA, true)
		if err != nil || resp.Rcode != dns.RcodeSuccess || resp.AuthenticatedData {
			b.t.Fatalf("StartDNSSEC: insecure zone %s: SOA from unbound: %v", z.Name, describeAnswer(resp, err))
		}
	}
	for _, z := range b.o.Bogus {
		resp, err := dnsQuery(b.d.Resolver, z.Name, dns.TypeSOA, true)
		if err != nil || resp.Rcode != dns.RcodeServerFailure {
			b.t.Fatalf("StartDNSSEC: bogus zone %s: SOA from unbound: %v", z.Name, describeAnswer(resp, err))
		}
	}
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
