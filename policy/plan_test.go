package policy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"testing"

	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/resolver"
)

// fakeDNS answers from maps; a missing name is NXDOMAIN.
var (
	encrypt12 = Requirement{Level: Encrypt, MinTLS: tls.VersionTLS12}
	verify12  = Requirement{Level: Verify, MinTLS: tls.VersionTLS12}
	verify13  = Requirement{Level: Verify, MinTLS: tls.VersionTLS13}
	none      = Requirement{Level: None}
	addr      = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
)

func TestPlan(t *testing.T) {
	dns := fakedns.New()
	dns.MX = map[string][]resolver.MX{
		"two.example":     {{Host: "mx2.two.example", Pref: 20}, {Host: "MX1.two.example.", Pref: 10}},
		"null.example":    {{Host: ".", Pref: 0}},
		"mixed.example":   {{Host: ".", Pref: 0}, {Host: "mx.mixed.example", Pref: 10}},
		"dup.example":     {{Host: "mx.dup.example", Pref: 10}, {Host: "mx.dup.example", Pref: 20}},
		"equal.example":   {{Host: "b.equal.example", Pref: 10}, {Host: "a.equal.example", Pref: 10}, {Host: "c.equal.example", Pref: 5}},
		"partner.example": {{Host: "mx.partner.example", Pref: 10}},
		"legacy.example":  {{Host: "mx.legacy.example", Pref: 10}},
		"noaddr.example":  nil,
	}
	dns.IP = map[string][]netip.Addr{"implicit.example": addr}
	dns.Errs = map[string]error{
		"MX servfail.example":    fmt.Errorf("%w: MX", resolver.ErrServFail),
		"MX timeout.example":     fmt.Errorf("%w: MX", resolver.ErrTimeout),
		"IP noaddr-fail.example": fmt.Errorf("%w: A", resolver.ErrServFail),
	}
	dns.MX["noaddr-fail.example"] = nil
	e := &Engine{
		DNS:     dns,
		Default: encrypt12,
		Overrides: map[string]Requirement{
			"partner.example": verify13,
			"legacy.example":  none,
		},
		// Reverse equal groups so the test sees that shuffling happened
		// only within a preference.
		Shuffle: func(n int, swap func(i, j int)) {
			for i := 0; i < n/2; i++ {
				swap(i, n-1-i)
			}
		},
	}
	tests := []struct {
		name   string
		domain string
		want   Plan
		err    error
	}{
		{"MX by preference, names lowercased, default level", "Two.Example.",
			Plan{Domain: "two.example", Source: SourceDefault, MXs: []MX{{Host: "mx1.two.example", Pref: 10, Require: encrypt12}, {Host: "mx2.two.example", Pref: 20, Require: encrypt12}}}, nil},
		{"equal preference shuffled only among equals", "equal.example",
			Plan{Domain: "equal.example", Source: SourceDefault, MXs: []MX{{Host: "c.equal.example", Pref: 5, Require: encrypt12}, {Host: "a.equal.example", Pref: 10, Require: encrypt12}, {Host: "b.equal.example", Pref: 10, Require: encrypt12}}}, nil},
		{"duplicate MX host kept once at its best preference", "dup.example",
			Plan{Domain: "dup.example", Source: SourceDefault, MXs: []MX{{Host: "mx.dup.example", Pref: 10, Require: encrypt12}}}, nil},
		{"override verify with TLS 1.3 applies to every MX", "partner.example",
			Plan{Domain: "partner.example", Source: SourceOverride, MXs: []MX{{Host: "mx.partner.example", Pref: 10, Require: verify13}}}, nil},
		{"override none is the only plaintext plan", "legacy.example",
			Plan{Domain: "legacy.example", Source: SourceOverride, MXs: []MX{{Host: "mx.legacy.example", Pref: 10, Require: none}}}, nil},
		{"no MX, address present: implicit MX (RFC 5321 5.1)", "implicit.example",
			Plan{Domain: "implicit.example", Source: SourceDefault, MXs: []MX{{Host: "implicit.example", Implicit: true, Require: encrypt12}}}, nil},
		{"null MX (RFC 7505)", "null.example", Plan{}, ErrNullMX},
		{"null MX beside a real MX is ignored", "mixed.example",
			Plan{Domain: "mixed.example", Source: SourceDefault, MXs: []MX{{Host: "mx.mixed.example", Pref: 10, Require: encrypt12}}}, nil},
		{"NXDOMAIN", "nowhere.example", Plan{}, ErrNoDomain},
		{"no MX and no address", "noaddr.example", Plan{}, ErrNoMailHost},
		{"MX SERVFAIL is temporary", "servfail.example", Plan{}, ErrDNS},
		{"MX timeout is temporary", "timeout.example", Plan{}, ErrDNS},
		{"implicit MX address SERVFAIL is temporary", "noaddr-fail.example", Plan{}, ErrDNS},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Plan(context.Background(), tc.domain)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPlanShufflesByDefault(t *testing.T) {
	dns := fakedns.New()
	dns.MX["eq.example"] = []resolver.MX{{Host: "a.eq.example", Pref: 10}, {Host: "b.eq.example", Pref: 10}, {Host: "c.eq.example", Pref: 10}}
	e := &Engine{DNS: dns, Default: encrypt12}
	first := map[string]bool{}
	for i := 0; i < 200 && len(first) < 3; i++ {
		p, err := e.Plan(context.Background(), "eq.example")
		if err != nil {
			t.Fatal(err)
		}
		first[p.MXs[0].Host] = true
	}
	if len(first) != 3 {
		t.Errorf("in 200 plans only %v came first; equal preferences must be randomised", first)
	}
}
