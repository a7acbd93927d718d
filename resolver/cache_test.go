package resolver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/resolver"
)

func newCachingResolver(t *testing.T, addr string) (*resolver.Resolver, *fakeclock.Clock) {
	t.Helper()
	c := fakeclock.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r, err := resolver.New(resolver.Config{Servers: []string{addr}, Timeout: testTimeout, CacheSize: 100, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// queriesFor counts the questions the server received for name and qtype.
func queriesFor(s *dnstest.Server, name string, qtype uint16) int {
	n := 0
	for _, q := range s.Queries() {
		if q.Name == dns.Fqdn(name) && q.Qtype == qtype {
			n++
		}
	}
	return n
}

// TestCacheTTL checks that answers are reused for exactly their TTL: the
// smallest in the answer for positive ones (RFC 2181 §5.2 wants one TTL per
// RRset; we take the smallest of all), the SOA negative TTL for NXDOMAIN
// and NODATA (RFC 2308 §5), capped at MaxCacheTTL, and never for a zero
// TTL, a negative answer without SOA, or a server failure.
func TestCacheTTL(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add(
		"neg.test. 3600 IN SOA ns.neg.test. host.neg.test. 1 3600 600 86400 120",
		"mixed.test. 300 IN A 192.0.2.1",
		"mixed.test. 60 IN A 192.0.2.2",
		"zero.test. 0 IN A 192.0.2.3",
		"long.test. 86400 IN MX 10 mx.long.test.",
		"nodata.neg.test. 300 IN A 192.0.2.4",
	)
	s.SetRcode("fail.test", dns.TypeA, dns.RcodeServerFailure)
	tests := []struct {
		name  string
		qtype uint16
		keep  time.Duration // 0: never kept
		errIs error
	}{
		{"mixed.test", dns.TypeA, 60 * time.Second, nil},
		{"zero.test", dns.TypeA, 0, nil},
		{"long.test", dns.TypeMX, resolver.MaxCacheTTL, nil},
		{"missing.neg.test", dns.TypeA, 120 * time.Second, resolver.ErrNXDomain},
		{"nodata.neg.test", dns.TypeMX, 120 * time.Second, nil},
		{"missing.nosoa", dns.TypeA, 0, resolver.ErrNXDomain},
		{"fail.test", dns.TypeA, 0, resolver.ErrServFail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, clk := newCachingResolver(t, s.Addr)
			before := queriesFor(s, tc.name, tc.qtype)
			ask := func() {
				t.Helper()
				_, _, err := r.Exchange(context.Background(), tc.name, tc.qtype)
				if !errors.Is(err, tc.errIs) || (tc.errIs == nil) != (err == nil) {
					t.Fatalf("Exchange error = %v, want %v", err, tc.errIs)
				}
			}
			asked := func(want int) {
				t.Helper()
				if got := queriesFor(s, tc.name, tc.qtype) - before; got != want {
					t.Fatalf("server asked %d times, want %d", got, want)
				}
			}
			ask()
			asked(1)
			if tc.keep == 0 {
				ask()
				asked(2)
				return
			}
			clk.Advance(tc.keep - time.Second)
			ask()
			asked(1)
			clk.Advance(time.Second)
			ask()
			asked(2)
		})
	}
}

// TestCacheKeepsVerdict checks that a cached answer keeps its DNSSEC
// verdict and its NXDOMAIN error text, and that Exchange hands out copies.
func TestCacheKeepsVerdict(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add(
		"secure.test. 300 IN SOA ns.secure.test. host.secure.test. 1 3600 600 86400 300",
		"mx.secure.test. 300 IN A 192.0.2.9",
	)
	s.SetAuthenticAll(true)
	r, _ := newCachingResolver(t, s.Addr)
	ctx := context.Background()

	_, res1, err1 := r.Exchange(ctx, "gone.secure.test", dns.TypeA)
	_, res2, err2 := r.Exchange(ctx, "gone.secure.test", dns.TypeA)
	if !errors.Is(err2, resolver.ErrNXDomain) || err1.Error() != err2.Error() {
		t.Errorf("cached NXDOMAIN error = %v, first was %v", err2, err1)
	}
	if !res1.Authentic || !res2.Authentic {
		t.Errorf("Authentic = %v then %v, want true both times", res1.Authentic, res2.Authentic)
	}

	m, _, err := r.Exchange(ctx, "mx.secure.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	m.Answer = nil
	addrs, res, err := r.LookupIP(ctx, "mx.secure.test")
	if err != nil || len(addrs) != 1 || addrs[0].String() != "192.0.2.9" || !res.Authentic {
		t.Errorf("LookupIP after modifying an Exchange answer = %v %+v %v, want [192.0.2.9] authentic", addrs, res, err)
	}
	if n := queriesFor(s, "mx.secure.test", dns.TypeA); n != 1 {
		t.Errorf("server asked %d times for the A record, want 1", n)
	}
}

func TestCacheSizeNegative(t *testing.T) {
	t.Parallel()
	_, err := resolver.New(resolver.Config{Servers: []string{"127.0.0.1:53"}, CacheSize: -1})
	if err == nil || err.Error() != "resolver: negative cache size -1" {
		t.Errorf("New() error = %v", err)
	}
}

// TestCacheOneEntryPerName: a name in capitals or with its trailing dot
// is the same name (RFC 4343): one query, one cached answer; an invalid
// name is refused before the cache and the network.
func TestCacheOneEntryPerName(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add("same.test. 300 IN MX 10 mx.same.test.")
	r, _ := newCachingResolver(t, s.Addr)
	for _, name := range []string{"same.test", "SAME.test.", " same.TEST ", "same.test."} {
		mxs, _, err := r.LookupMX(context.Background(), name)
		if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.same.test" {
			t.Fatalf("LookupMX(%q) = %v, %v", name, mxs, err)
		}
	}
	if n := queriesFor(s, "same.test", dns.TypeMX); n != 1 {
		t.Errorf("%d queries for four spellings of one name, want 1", n)
	}
	if r.CacheLen() != 1 {
		t.Errorf("cache holds %d answers, want 1", r.CacheLen())
	}
	if _, _, err := r.LookupMX(context.Background(), "bad..name"); err == nil {
		t.Error("invalid name accepted")
	}
}

// TestHasAddressKeepsPositiveOnly: HasAddress keeps an address in the
// cache, never a "no address": WKD keeps that verdict for the domain.
func TestHasAddressKeepsPositiveOnly(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add(
		"test. 3600 IN SOA ns.test. host.test. 1 3600 600 86400 300",
		"v4.test. 300 IN A 192.0.2.1",
		"mx-only.test. 300 IN MX 10 mx.test.",
	)
	r, _ := newCachingResolver(t, s.Addr)
	for _, tc := range []struct {
		host  string
		qtype uint16
		want  int // queries after two calls
	}{
		{"v4.test", dns.TypeA, 1},
		{"absent.test", dns.TypeA, 2},
		{"mx-only.test", dns.TypeAAAA, 2},
	} {
		for range 2 {
			if _, err := r.HasAddress(context.Background(), tc.host); err != nil {
				t.Fatal(err)
			}
		}
		if n := queriesFor(s, tc.host, tc.qtype); n != tc.want {
			t.Errorf("%s %s asked %d times in two HasAddress calls; want %d", tc.host, dns.TypeToString[tc.qtype], n, tc.want)
		}
	}
	// Other lookups still keep negative answers (RFC 2308 §5).
	for range 2 {
		r.LookupTXT(context.Background(), "absent.test")
	}
	if n := queriesFor(s, "absent.test", dns.TypeTXT); n != 1 {
		t.Errorf("absent.test TXT asked %d times in two lookups; want 1 (the NXDOMAIN kept)", n)
	}
}
