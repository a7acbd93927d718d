package resolver_test

import (
	"context"
	"testing"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
)

// BenchmarkQuery is one uncached query to a loopback server: the cost of
// a first contact's lookup (the fake server, in this process, is counted
// too).
func BenchmarkQuery(b *testing.B) {
	s := dnstest.Start(b)
	s.Add("mx1.example.test. 300 IN A 192.0.2.1")
	r := newResolver(b, s.Addr)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Exchange(ctx, "mx1.example.test", dns.TypeA); err != nil {
			b.Fatal(err)
		}
	}
}
