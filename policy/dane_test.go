package policy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
)

// secureDNS answers MX, A/AAAA and TLSA from maps, each name marked
// DNSSEC-authentic or not, and counts TLSA queries.
type secureDNS struct {
	mx        map[string][]resolver.MX
	ip        map[string]netip.Addr
	canonical map[string]string // host → end of its CNAME chain
	tlsa      map[string][]string
	tlsaErr   map[string]error
	insecure  map[string]bool // names whose answers are not authentic
	queried   []string
}

func (d *secureDNS) res(name string) resolver.Result {
	return resolver.Result{Authentic: !d.insecure[name], Canonical: d.canonical[name]}
}

func (d *secureDNS) LookupMX(_ context.Context, name string) ([]resolver.MX, resolver.Result, error) {
	return d.mx[name], d.res(name), nil
}

func (d *secureDNS) LookupIP(_ context.Context, name string) ([]netip.Addr, resolver.Result, error) {
	return []netip.Addr{d.ip[name]}, d.res(name), nil
}

func (d *secureDNS) LookupTLSA(_ context.Context, name string) ([]*dns.TLSA, resolver.Result, error) {
	d.queried = append(d.queried, name)
	if err := d.tlsaErr[name]; err != nil {
		return nil, resolver.Result{}, err
	}
	recs, ok := d.tlsa[name]
	if !ok {
		return nil, d.res(name), fmt.Errorf("%w: TLSA %s", resolver.ErrNXDomain, name)
	}
	var out []*dns.TLSA
	for _, r := range recs {
		rr, err := dns.NewRR(name + ". 300 IN TLSA " + r)
		if err != nil {
			panic(err)
		}
		out = append(out, rr.(*dns.TLSA))
	}
	return out, d.res(name), nil
}

const (
	ee = "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	pk = "1 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// TestPlanDANE is the DANE part of the decision (RFC 7672 §2.2 and the
// DESIGN.md precedence), one row per rule.
func TestPlanDANE(t *testing.T) {
	one := func(h string) []resolver.MX { return []resolver.MX{{Host: h, Pref: 10}} }
	two := func(a, b string) []resolver.MX { return []resolver.MX{{Host: a, Pref: 10}, {Host: b, Pref: 20}} }
	servfail := fmt.Errorf("%w: TLSA: SERVFAIL", resolver.ErrServFail)
	tests := []struct {
		name     string
		mx       []resolver.MX
		setup    func(d *secureDNS)
		sts      *mtasts.Policy
		required bool
		wantReq  []string // per kept MX: Requirement.String()
		names    [][]string
		unusable []string
		queried  []string // TLSA names asked, in order; nil: not checked
		err      error
	}{
		{name: "secure address, secure usable TLSA: DANE, names include the secure next-hop domain",
			mx: one("mx.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx.d.test"] = []string{ee} },
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx.d.test", "d.test"}}},
		{name: "insecure MX records: DANE still applies, next-hop domain not a reference identifier",
			mx: one("mx.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx.d.test"] = []string{ee}; d.insecure["d.test"] = true },
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx.d.test"}}},
		{name: "insecure address: TLSA not even queried",
			mx: one("mx.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx.d.test"] = []string{ee}; d.insecure["mx.d.test"] = true },
			wantReq: []string{"encrypt,tls>=1.2"}, queried: []string{}},
		{name: "insecure TLSA answer: no DANE",
			mx: one("mx.d.test"), setup: func(d *secureDNS) {
				d.tlsa["_25._tcp.mx.d.test"] = []string{ee}
				d.insecure["_25._tcp.mx.d.test"] = true
			},
			wantReq: []string{"encrypt,tls>=1.2"}},
		{name: "secure denial: no DANE",
			mx: one("mx.d.test"), wantReq: []string{"encrypt,tls>=1.2"}, queried: []string{"_25._tcp.mx.d.test"}},
		{name: "only unusable records: TLS required, not authenticated",
			mx: one("mx.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx.d.test"] = []string{pk} },
			wantReq: []string{"encrypt(tlsa unusable),tls>=1.2"}, names: [][]string{{"mx.d.test", "d.test"}}},
		{name: "address through a secure CNAME: TLSA at the target first",
			mx: one("alias.d.test"), setup: func(d *secureDNS) {
				d.canonical["alias.d.test"] = "real.d.test"
				d.tlsa["_25._tcp.real.d.test"] = []string{ee}
			},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"real.d.test", "alias.d.test", "d.test"}}, queried: []string{"_25._tcp.real.d.test"}},
		{name: "TLSA SERVFAIL on MX1: MX1 unusable, MX2 with DANE kept",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *secureDNS) {
				d.tlsaErr["_25._tcp.mx1.d.test"] = servfail
				d.tlsa["_25._tcp.mx2.d.test"] = []string{ee}
			},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx2.d.test", "d.test"}}, unusable: []string{"mx1.d.test"}},
		{name: "TLSA SERVFAIL on every MX: temporary failure, never a weaker policy",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *secureDNS) {
				d.tlsaErr["_25._tcp.mx1.d.test"] = servfail
				d.tlsaErr["_25._tcp.mx2.d.test"] = servfail
			}, err: ErrDANELookup},
		{name: "DANE MX outside an enforced MTA-STS policy is kept; a non-DANE MX outside it is not",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx1.d.test"] = []string{ee} },
			sts:     &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.elsewhere.test"}},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx1.d.test", "d.test"}}},
		{name: "level dane: an MX without TLSA is a temporary failure",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *secureDNS) { d.tlsa["_25._tcp.mx1.d.test"] = []string{ee} },
			required: true, err: ErrDANERequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &secureDNS{mx: map[string][]resolver.MX{"d.test": tc.mx}, ip: map[string]netip.Addr{}, canonical: map[string]string{},
				tlsa: map[string][]string{}, tlsaErr: map[string]error{}, insecure: map[string]bool{}, queried: []string{}}
			if tc.setup != nil {
				tc.setup(d)
			}
			e := &Engine{DNS: d, TLSA: d, Default: encrypt12, DANERequired: map[string]bool{"d.test": tc.required}, Shuffle: func(int, func(i, j int)) {}}
			if tc.sts != nil {
				e.STS = &fakeSTS{res: map[string]stscache.Result{"d.test": {Policy: tc.sts, ID: "1"}}, lookups: map[string]int{}}
			}
			p, err := e.Plan(context.Background(), "d.test")
			if tc.err != nil || err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			var reqs []string
			var names [][]string
			for _, mx := range p.MXs {
				reqs = append(reqs, mx.Require.String())
				if mx.Require.DANE != nil {
					names = append(names, mx.Require.DANE.Names)
				}
			}
			if !reflect.DeepEqual(reqs, tc.wantReq) || !reflect.DeepEqual(names, tc.names) {
				t.Errorf("requirements %v names %v, want %v %v", reqs, names, tc.wantReq, tc.names)
			}
			var unusable []string
			for _, u := range p.Unusable {
				unusable = append(unusable, u.Host)
				if !errors.Is(u.Err, dane.ErrLookup) {
					t.Errorf("unusable %s: %v, want a dane.ErrLookup", u.Host, u.Err)
				}
			}
			if strings.Join(unusable, ",") != strings.Join(tc.unusable, ",") {
				t.Errorf("unusable %v, want %v", unusable, tc.unusable)
			}
			if tc.queried != nil && !reflect.DeepEqual(d.queried, tc.queried) {
				t.Errorf("TLSA queried %v, want %v", d.queried, tc.queried)
			}
		})
	}
}
