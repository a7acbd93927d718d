package relay

import (
	"fmt"
	"testing"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
)

// TestBoundedAfterManyDomains: after mail to 10,000 distinct domains
// (hosted by one provider, as most small domains are), the structures
// that grow with the destinations stay within their bounds: the
// connection pool, the DNS cache, the MTA-STS cache (what it keeps of
// domains without a policy) and the metric series of the domain label.
func TestBoundedAfterManyDomains(t *testing.T) {
	const domains, perMessage = 10000, 100
	const dnsCache, topDomains = 2000, 20
	w := newWorld(t, worldOpts{log: benchLog(), dnsCache: dnsCache, sts: true, metrics: metrics.Options{TopDomains: topDomains}})
	mx := w.mx("mx.provider.test", mxtest.Behavior{Discard: true})
	for i := range domains {
		w.domain(fmt.Sprintf("d%d.test", i), "mx.provider.test")
	}
	for m := range domains / perMessage {
		rcpts := make([]string, perMessage)
		for j := range rcpts {
			rcpts[j] = fmt.Sprintf("u@d%d.test", m*perMessage+j)
		}
		for i, r := range lmtpTransact(t, w.lmtp, rcpts, simpleBody) {
			if r[:3] != "250" {
				t.Fatalf("%s: %s", rcpts[i], r)
			}
		}
	}
	if n := mx.Received(); n != domains {
		t.Fatalf("MX received %d messages, want %d", n, domains)
	}
	if n := w.deliver.Pool.Len(); n < 1 || n > 8 {
		t.Errorf("pool holds %d idle connections for one MX host, want 1 to 8 (parallel routes)", n)
	}
	if n := w.engine.DNS.(interface{ CacheLen() int }).CacheLen(); n > dnsCache {
		t.Errorf("DNS cache holds %d answers, bound %d", n, dnsCache)
	}
	if n := w.sts.Len(); n > 0 {
		t.Errorf("MTA-STS cache keeps %d entries for domains without a policy", n)
	}
	// listed (none) + top domains + other, per label set.
	if n := metricstest.Series(t, w.reg, "caliop_delivered_messages_total"); n > topDomains+1 {
		t.Errorf("caliop_delivered_messages_total has %d series, bound %d", n, topDomains+1)
	}
	if n := metricstest.Series(t, w.reg, "caliop_outbound_sessions_total"); n > topDomains+1 {
		t.Errorf("caliop_outbound_sessions_total has %d series, bound %d", n, topDomains+1)
	}
}
