package inbound

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
)

// TestMetricsSessions: transactions by sending domain and TLS version;
// the null sender is "<>"; senders beyond the slots fold into "other".
func TestMetricsSessions(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "", metrics.Options{Domains: []string{"partner.example"}, TopDomains: 1})
	h, _ := startMX(t, mxtest.Behavior{}, func(o *Options) { o.Metrics = m })
	plain := h.dial()
	plain.ehlo()
	for _, from := range []string{"a@a.example", "b@A.EXAMPLE", "", "x@spam1.example", "y@spam2.example"} {
		plain.envelope(from, "bob@example.org")
		plain.cmd("RSET", 250, "")
	}
	secure := h.dial()
	secure.ehlo()
	secure.startTLS(h.ca)
	secure.ehlo()
	secure.envelope("c@partner.example", "bob@example.org")
	secure.cmd("RSET", 250, "")

	for _, c := range []struct {
		domain, version string
		want            float64
	}{
		{"a.example", "none", 2},
		{"<>", "none", 1},
		{"other", "none", 2},
		{"partner.example", "1.3", 1},
	} {
		if got := metricstest.Value(t, reg, "caliop_inbound_sessions_total", "domain", c.domain, "tls_version", c.version); got != c.want {
			t.Errorf("caliop_inbound_sessions_total{domain=%q,tls_version=%q} = %v, want %v", c.domain, c.version, got, c.want)
		}
	}
	if got := metricstest.Value(t, reg, "caliop_metrics_domain_overflow_total"); got != 2 {
		t.Errorf("overflow %v, want 2", got)
	}
}
