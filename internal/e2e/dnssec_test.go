package e2e

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/caliop/relay/resolver"
)

// TestDNSSEC checks the harness's contract with the resolver package:
// the signed zone validates (AD), including an authenticated NXDOMAIN; the
// insecure zone answers without AD; the bogus zone gives SERVFAIL.
func TestDNSSEC(t *testing.T) {
	bin := requireComponents(t, "knotd", "unbound")
	d := StartDNSSEC(t, "example.test", []string{
		"mx.example.test. 300 IN A 127.0.3.1",
		"_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	}, DNSSECOptions{
		Insecure: []DNSSECZone{{Name: "insecure.test", Records: []string{"mx.insecure.test. 300 IN A 127.0.3.2"}}},
		Bogus:    []DNSSECZone{{Name: "bogus.test", Records: []string{"mx.bogus.test. 300 IN A 127.0.3.3"}}},
		Knotd:    bin["knotd"],
		Unbound:  bin["unbound"],
	})
	r, err := resolver.New(resolver.Config{Servers: []string{d.Resolver}, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	checkIP := func(host, want string, authentic bool) {
		t.Helper()
		addrs, res, err := r.LookupIP(ctx, host)
		if err != nil {
			t.Errorf("LookupIP(%s): %v", host, err)
			return
		}
		if !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr(want)}) || res.Authentic != authentic {
			t.Errorf("LookupIP(%s) = %v, Authentic %v; want [%s], Authentic %v", host, addrs, res.Authentic, want, authentic)
		}
	}
	checkIP("mx.example.test", "127.0.3.1", true)
	checkIP("mx.insecure.test", "127.0.3.2", false)

	tlsa, res, err := r.LookupTLSA(ctx, "_25._tcp.mx.example.test")
	if err != nil || len(tlsa) != 1 || !res.Authentic {
		t.Errorf("LookupTLSA(_25._tcp.mx.example.test) = %v, Authentic %v, %v; want 1 record, authentic", tlsa, res.Authentic, err)
	} else if tlsa[0].Usage != 3 || tlsa[0].Selector != 1 || tlsa[0].MatchingType != 1 {
		t.Errorf("TLSA = %v, want 3 1 1", tlsa[0])
	}

	_, res, err = r.LookupTLSA(ctx, "_25._tcp.missing.example.test")
	if !errors.Is(err, resolver.ErrNXDomain) || !res.Authentic {
		t.Errorf("LookupTLSA(_25._tcp.missing.example.test): Authentic %v, %v; want an authenticated NXDOMAIN", res.Authentic, err)
	}

	if addrs, _, err := r.LookupIP(ctx, "mx.bogus.test"); !errors.Is(err, resolver.ErrServFail) {
		t.Errorf("LookupIP(mx.bogus.test) = %v, %v; want SERVFAIL", addrs, err)
	}
}
