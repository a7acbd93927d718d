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
	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// tlsa is the TLSA RRset of records in presentation form; the plan does
// not read the owner name.
func tlsa(records ...string) []*dns.TLSA {
	var out []*dns.TLSA
	for _, r := range records {
		out = append(out, fakedns.TLSARecord("_25._tcp.any.test", r))
	}
	return out
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
		setup    func(d *fakedns.Resolver)
		sts      *mtasts.Policy
		required bool
		wantReq  []string // per kept MX: Requirement.String()
		names    [][]string
		unusable []string
		queried  []string // TLSA names asked, in order; nil: not checked
		err      error
	}{
		{name: "secure address, secure usable TLSA: DANE, names include the secure next-hop domain",
			mx: one("mx.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx.d.test"] = tlsa(ee) },
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx.d.test", "d.test"}}},
		{name: "insecure MX records: DANE still applies, next-hop domain not a reference identifier",
			mx: one("mx.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx.d.test"] = tlsa(ee); d.Insecure["d.test"] = true },
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx.d.test"}}},
		{name: "insecure address: TLSA not even queried",
			mx: one("mx.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx.d.test"] = tlsa(ee); d.Insecure["mx.d.test"] = true },
			wantReq: []string{"encrypt,tls>=1.2"}, queried: []string{}},
		{name: "insecure TLSA answer: no DANE",
			mx: one("mx.d.test"), setup: func(d *fakedns.Resolver) {
				d.TLSA["_25._tcp.mx.d.test"] = tlsa(ee)
				d.Insecure["_25._tcp.mx.d.test"] = true
			},
			wantReq: []string{"encrypt,tls>=1.2"}},
		{name: "secure denial: no DANE",
			mx: one("mx.d.test"), wantReq: []string{"encrypt,tls>=1.2"}, queried: []string{"_25._tcp.mx.d.test"}},
		{name: "only unusable records: TLS required, not authenticated",
			mx: one("mx.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx.d.test"] = tlsa(pk) },
			wantReq: []string{"encrypt(tlsa unusable),tls>=1.2"}, names: [][]string{{"mx.d.test", "d.test"}}},
		{name: "address through a secure CNAME: TLSA at the target first",
			mx: one("alias.d.test"), setup: func(d *fakedns.Resolver) {
				d.Canonical["alias.d.test"] = "real.d.test"
				d.TLSA["_25._tcp.real.d.test"] = tlsa(ee)
			},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"real.d.test", "alias.d.test", "d.test"}}, queried: []string{"_25._tcp.real.d.test"}},
		{name: "TLSA SERVFAIL on MX1: MX1 unusable, MX2 with DANE kept",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *fakedns.Resolver) {
				d.Errs["TLSA _25._tcp.mx1.d.test"] = servfail
				d.TLSA["_25._tcp.mx2.d.test"] = tlsa(ee)
			},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx2.d.test", "d.test"}}, unusable: []string{"mx1.d.test"}},
		{name: "TLSA SERVFAIL on every MX: temporary failure, never a weaker policy",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *fakedns.Resolver) {
				d.Errs["TLSA _25._tcp.mx1.d.test"] = servfail
				d.Errs["TLSA _25._tcp.mx2.d.test"] = servfail
			}, err: ErrDANELookup},
		{name: "DANE MX outside an enforced MTA-STS policy is kept; a non-DANE MX outside it is not",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx1.d.test"] = tlsa(ee) },
			sts:     &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx.elsewhere.test"}},
			wantReq: []string{"dane,tls>=1.2"}, names: [][]string{{"mx1.d.test", "d.test"}}},
		{name: "level dane: an MX without TLSA is a temporary failure",
			mx: two("mx1.d.test", "mx2.d.test"), setup: func(d *fakedns.Resolver) { d.TLSA["_25._tcp.mx1.d.test"] = tlsa(ee) },
			required: true, err: ErrDANERequired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := fakedns.New()
			d.Secure = true
			d.MX["d.test"] = tc.mx
			for _, mx := range tc.mx {
				d.IP[mx.Host] = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
			}
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
			// The decision reports each unusable MX, and records nothing.
			var reported []string
			for _, o := range p.Outcomes {
				if o.Result == tlsrpt.DNSSECInvalid {
					reported = append(reported, o.MX)
				}
			}
			if strings.Join(reported, ",") != strings.Join(tc.unusable, ",") {
				t.Errorf("dnssec-invalid outcomes for %v, want %v", reported, tc.unusable)
			}
			queried := []string{}
			for _, q := range d.Asked() {
				if name, ok := strings.CutPrefix(q, "TLSA "); ok {
					queried = append(queried, name)
				}
			}
			if tc.queried != nil && !reflect.DeepEqual(queried, tc.queried) {
				t.Errorf("TLSA queried %v, want %v", queried, tc.queried)
			}
		})
	}
}
