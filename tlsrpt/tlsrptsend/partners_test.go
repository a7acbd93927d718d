package tlsrptsend

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/tlsrpt"
)

type nopRecorder struct{}

func (nopRecorder) Record(tlsrpt.Outcome) {}

// TestPartners: one check per domain and day, on the injected clock; at
// most partnerAtOnce at once; the gauge says what the check found.
func TestPartners(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "", metrics.Options{Domains: []string{"a.test"}})
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	dns := fakedns.New()
	for _, d := range []string{"a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		dns.TXT["_smtp._tls."+d] = []string{"v=TLSRPTv1; rua=mailto:r@example.test"}
	}
	// While hold is open, lookups wait.
	var holdMu sync.Mutex
	var hold chan struct{}
	dns.Hook = func(ctx context.Context, _, _ string) {
		holdMu.Lock()
		h := hold
		holdMu.Unlock()
		if h != nil {
			select {
			case <-h:
			case <-ctx.Done():
			}
		}
	}
	p := &Partners{Next: nopRecorder{}, DNS: dns, Metrics: m, Now: func() time.Time { return now }}
	wait := func(name string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); dns.Count("TXT", name) < n && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		if got := dns.Count("TXT", name); got != n {
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

	holdMu.Lock()
	hold = make(chan struct{})
	holdMu.Unlock()
	for _, d := range []string{"b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		p.Record(tlsrpt.Outcome{Domain: d})
	}
	time.Sleep(50 * time.Millisecond)
	started := 0
	for _, d := range []string{"b.test", "c.test", "d.test", "e.test", "f.test", "g.test"} {
		started += dns.Count("TXT", "_smtp._tls."+d)
	}
	close(hold)
	if started != partnerAtOnce {
		t.Errorf("%d checks ran at once, want %d", started, partnerAtOnce)
	}
}
