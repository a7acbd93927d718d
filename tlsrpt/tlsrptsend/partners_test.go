package tlsrptsend

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// partnerDNS answers every domain with a TLS-RPT record, counting
// lookups; while hold is open, lookups wait.
type partnerDNS struct {
	mu      sync.Mutex
	lookups map[string]int
	hold    chan struct{}
}

func (d *partnerDNS) LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error) {
	d.mu.Lock()
	d.lookups[name]++
	hold := d.hold
	d.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
		}
	}
	return []string{"v=TLSRPTv1; rua=mailto:r@example.test"}, resolver.Result{}, nil
}

func (d *partnerDNS) LookupMX(context.Context, string) ([]resolver.MX, resolver.Result, error) {
	return nil, resolver.Result{}, nil
}

func (d *partnerDNS) count(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lookups[name]
}

type nopRecorder struct{}

func (nopRecorder) Record(tlsrpt.Outcome) {}

// TestPartners: one check per domain and day, on the injected clock; at
// most partnerAtOnce at once; the gauge says what the check found.
func TestPartners(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "", metrics.Options{Domains: []string{"a.test"}})
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	dns := &partnerDNS{lookups: map[string]int{}}
	p := &Partners{Next: nopRecorder{}, DNS: dns, Metrics: m, Now: func() time.Time { return now }}
	wait := func(name string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); dns.count(name) < n && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if got := dns.count(name); got != n {
			t.Fatalf("%s looked up %d times, want %d", name, got, n)
		}
	}
	p.Record(tlsrpt.Outcome{Domain: "a.test"})
	p.Record(tlsrpt.Outcome{Domain: "a.test"})
	wait("_smtp._tls.a.test", 1)
	for deadline := time.Now().Add(5 * time.Second); metricstest.Value(t, reg, "caliop_partner_tlsrpt_published", "domain", "a.test") != 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if v := metricstest.Value(t, reg, "caliop_partner_tlsrpt_published", "domain", "a.test"); v != 1 {
		t.Errorf("caliop_partner_tlsrpt_published{domain=a.test} = %v, want 1", v)
	}
	now = now.Add(25 * time.Hour)
	p.Record(tlsrpt.Outcome{Domain: "a.test"})
	wait("_smtp._tls.a.test", 2)

	dns.mu.Lock()
	dns.hold = make(chan struct{})
	dns.mu.Unlock()
	for _, d := range []string{"b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		p.Record(tlsrpt.Outcome{Domain: d})
	}
	time.Sleep(50 * time.Millisecond)
	started := 0
	for _, d := range []string{"b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		started += dns.count("_smtp._tls." + d)
	}
	close(dns.hold)
	if started != partnerAtOnce {
		t.Errorf("%d checks ran at once, want %d", started, partnerAtOnce)
	}
}
