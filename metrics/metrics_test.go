package metrics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/metrics/metricstest"
)

const (
	delivered = "caliop_delivered_messages_total"
	overflow  = "caliop_metrics_domain_overflow_total"
)

func newMetrics(t *testing.T, o metrics.Options) (*metrics.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return metrics.New(reg, "1.2.3", o), reg
}

// TestDomainFlood: 100,000 distinct destination domains, some hosted by a
// provider, leave the number of series bounded by what the options allow,
// and every folding is counted once.
func TestDomainFlood(t *testing.T) {
	t.Parallel()
	o := metrics.Options{
		Domains:    []string{"partner.example", "bank.example"},
		TopDomains: 20,
		Providers:  map[string]string{".google.com": "google", "outlook.com": "microsoft"},
	}
	m, reg := newMetrics(t, o)
	const n = 100_000
	folded := 0
	for i := range n {
		dst := metrics.Destination{Domain: fmt.Sprintf("d%d.example", i), MXs: []string{fmt.Sprintf("mx.d%d.example", i)}}
		switch i % 10 {
		case 1:
			dst.MXs = []string{"aspmx.l.google.com."}
		case 2:
			dst.MXs = []string{"d2-example.mail.protection.outlook.com"}
		case 3:
			dst.Domain = "Partner.Example." // listed: its own label, never folded
		}
		if m.Domain(dst.Domain, dst.MXs) != strings.TrimSuffix(strings.ToLower(dst.Domain), ".") {
			folded++
		}
		m.Delivered(dst, metrics.ProtectionTLS, 1)
	}
	bound := len(o.Domains) + o.TopDomains + len(o.Providers) + 1
	if got := metricstest.Series(t, reg, delivered); got > bound || got < bound-1 {
		t.Errorf("%d series of %s, want at most %d (and all slots used)", got, delivered, bound)
	}
	// Domain and Delivered each resolve the label once per call.
	if got, want := metricstest.Value(t, reg, overflow), float64(2*folded); got != want {
		t.Errorf("%s = %v, want %v", overflow, got, want)
	}
	if got := metricstest.Value(t, reg, delivered, "domain", "partner.example", "protection", "tls"); got != n/10 {
		t.Errorf("listed domain: %v messages, want %d", got, n/10)
	}
	for _, p := range []string{"google", "microsoft"} {
		if got := metricstest.Value(t, reg, delivered, "domain", p, "protection", "tls"); got != n/10 {
			t.Errorf("provider %s: %v messages, want %d", p, got, n/10)
		}
	}
	// The first domains seen kept their slots; later ones are "other".
	if got := metricstest.Value(t, reg, delivered, "domain", "d0.example", "protection", "tls"); got != 1 {
		t.Errorf("d0.example (first seen): %v, want its own series with 1", got)
	}
	if got := metricstest.Value(t, reg, delivered, "domain", "other", "protection", "tls"); got == 0 {
		t.Error("no series for other")
	}
	if vals := metricstest.LabelValues(t, reg, delivered, "domain"); vals["d99990.example"] {
		t.Error("a late domain got a label of its own")
	}
}

// TestDomainLabel is the label decision, row by row.
func TestDomainLabel(t *testing.T) {
	t.Parallel()
	m, _ := newMetrics(t, metrics.Options{
		Domains:    []string{"gmail.com", "Listed.Example."},
		TopDomains: 2,
		Providers:  map[string]string{".google.com": "google", ".outlook.com": "microsoft", ".protection.outlook.com": "m365"},
	})
	tests := []struct {
		name, domain string
		mxs          []string
		want         string
	}{
		{"listed wins over its provider", "gmail.com", []string{"gmail-smtp-in.l.google.com"}, "gmail.com"},
		{"listed, normalised", "LISTED.example.", nil, "listed.example"},
		{"provider by MX suffix, no slot taken", "hosted.example", []string{"aspmx.l.google.com."}, "google"},
		{"longest suffix wins", "corp.example", []string{"corp-example.mail.protection.outlook.com"}, "m365"},
		{"any MX may match", "mixed.example", []string{"mx.mixed.example", "mx2.outlook.com"}, "microsoft"},
		{"suffix matches whole labels only", "fake.example", []string{"mx.notgoogle.com"}, "fake.example"},
		{"not UTF-8: no slot", "\xff.example", nil, "other"},
		{"second slot", "own.example", []string{"mx.own.example"}, "own.example"},
		{"slot kept", "FAKE.example", []string{"aspmx.l.google.com"}, "fake.example"},
		{"slots full", "late.example", []string{"mx.late.example"}, "other"},
		{"provider still groups when full", "late2.example", []string{"alt1.aspmx.l.google.com"}, "google"},

		{"empty", "", nil, "other"},
	}
	for _, tt := range tests {
		if got := m.Domain(tt.domain, tt.mxs); got != tt.want {
			t.Errorf("%s: Domain(%q, %q) = %q, want %q", tt.name, tt.domain, tt.mxs, got, tt.want)
		}
	}
}

// TestTwoRegistries: two Metrics in one process do not share series or
// domain slots.
func TestTwoRegistries(t *testing.T) {
	t.Parallel()
	a, regA := newMetrics(t, metrics.Options{TopDomains: 1})
	b, regB := newMetrics(t, metrics.Options{TopDomains: 1})
	a.Delivered(metrics.Destination{Domain: "a.example"}, metrics.ProtectionTLS, 3)
	b.Delivered(metrics.Destination{Domain: "b.example"}, metrics.ProtectionPGP, 1)
	if got := metricstest.Value(t, regA, delivered, "domain", "a.example", "protection", "tls"); got != 1 {
		t.Errorf("a: %v", got)
	}
	if got := metricstest.Value(t, regB, delivered, "domain", "a.example", "protection", "tls"); got != 0 {
		t.Errorf("b sees a's series: %v", got)
	}
	if got := metricstest.Value(t, regB, "caliop_delivered_recipients_total", "domain", "b.example", "protection", "pgp"); got != 1 {
		t.Errorf("b: %v", got)
	}
}

// TestEvents: every event method lands on its series with the documented
// labels; unknown label values become "other"; the whole registry lints
// clean.
func TestEvents(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t, metrics.Options{Domains: []string{"partner.example"}})
	dst := metrics.Destination{Domain: "partner.example"}
	m.OutboundSession(metrics.Session{Destination: dst, TLSVersion: 0x0304, Auth: metrics.AuthDANE, Policy: metrics.PolicyDANE})
	m.OutboundSession(metrics.Session{Destination: dst, Auth: "bogus", Policy: metrics.PolicyOverride})
	m.Delivered(dst, metrics.ProtectionAuthenticated, 2)
	m.Failed(dst, "certificate-expired", 3)
	m.Failed(dst, "made-up", 1)
	m.Plaintext(dst)
	m.DeliveryFinished(1500*time.Millisecond, []int{250, 451, 550})
	m.MTASTSFetch(metrics.STSWebPKIInvalid)
	m.WatchMTASTSPolicies(func() map[string]int { return map[string]int{"enforce": 3, "none": 9} })
	m.DANE(metrics.DANEMismatch)
	m.WKDLookup(metrics.WKDNoKey, 40*time.Millisecond)
	m.WKDKeyChange()
	m.PGP("encrypted")
	m.InboundSession("", 0)
	m.InboundSession("Sender.Example", 0x0303)
	m.TLSRPTReport(metrics.TLSRPTMailto, errors.New("smtp: 451"))
	m.WatchCertificates(func() map[string]time.Time {
		return map[string]time.Time{"mx.example.net": time.Unix(1893456000, 0), "bad\xff": time.Unix(1, 0)}
	})

	want := []struct {
		name   string
		labels []string
		value  float64
	}{
		{"caliop_build_info", []string{"version", "1.2.3"}, 1},
		{"caliop_outbound_sessions_total", []string{"domain", "partner.example", "tls_version", "1.3", "auth", "dane", "policy", "dane"}, 1},
		{"caliop_outbound_sessions_total", []string{"domain", "partner.example", "tls_version", "none", "auth", "other", "policy", "override"}, 1},
		{"caliop_delivered_messages_total", []string{"domain", "partner.example", "protection", "tls-authenticated"}, 1},
		{"caliop_delivered_recipients_total", []string{"domain", "partner.example", "protection", "tls-authenticated"}, 2},
		{"caliop_delivery_failures_total", []string{"domain", "partner.example", "result_type", "certificate-expired"}, 3},
		{"caliop_delivery_failures_total", []string{"domain", "partner.example", "result_type", "other"}, 1},
		{"caliop_plaintext_deliveries_total", []string{"domain", "partner.example"}, 1},
		{"caliop_delivery_duration_seconds", nil, 1},
		{"caliop_delivery_recipients_total", []string{"class", "4xx"}, 1},
		{"caliop_mtasts_fetches_total", []string{"result", "webpki-invalid"}, 1},
		{"caliop_mtasts_fetches_total", []string{"result", "ok"}, 0},
		{"caliop_mtasts_policies", []string{"mode", "enforce"}, 3},
		{"caliop_mtasts_policies", []string{"mode", "testing"}, 0},
		{"caliop_dane_verifications_total", []string{"result", "mismatch"}, 1},
		{"caliop_wkd_lookups_total", []string{"result", "no-key"}, 1},
		{"caliop_wkd_lookup_duration_seconds", nil, 1},
		{"caliop_wkd_key_changes_total", nil, 1},
		{"caliop_pgp_messages_total", []string{"decision", "encrypted"}, 1},
		{"caliop_inbound_sessions_total", []string{"domain", "<>", "tls_version", "none"}, 1},
		{"caliop_inbound_sessions_total", []string{"domain", "sender.example", "tls_version", "1.2"}, 1},
		{"caliop_tlsrpt_reports_total", []string{"transport", "mailto", "result", "error"}, 1},
		{"caliop_certificate_expiry_timestamp_seconds", []string{"host", "mx.example.net"}, 1893456000},
		{"caliop_metrics_domain_overflow_total", nil, 0},
	}
	for _, w := range want {
		if got := metricstest.Value(t, reg, w.name, w.labels...); got != w.value {
			t.Errorf("%s%q = %v, want %v", w.name, w.labels, got, w.value)
		}
	}
	if n := metricstest.Series(t, reg, "caliop_mtasts_policies"); n != 2 {
		t.Errorf("%d caliop_mtasts_policies series, want enforce and testing only", n)
	}
	if n := metricstest.Series(t, reg, "caliop_certificate_expiry_timestamp_seconds"); n != 1 {
		t.Errorf("%d certificate series, want the invalid host skipped", n)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestNil: a nil *Metrics records nothing and does not panic.
func TestNil(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	dst := metrics.Destination{Domain: "a.example"}
	m.OutboundSession(metrics.Session{Destination: dst})
	m.Delivered(dst, metrics.ProtectionTLS, 1)
	m.Failed(dst, metrics.FailureDNS, 1)
	m.Plaintext(dst)
	m.DeliveryFinished(time.Second, []int{250})
	m.MTASTSFetch(metrics.STSFetchOK)
	m.WatchMTASTSPolicies(func() map[string]int { return nil })
	m.DANE(metrics.DANEMatch)
	m.WKDLookup(metrics.WKDKey, time.Second)
	m.WKDKeyChange()
	m.PGP("encrypted")
	m.InboundSession("a.example", 0)
	m.TLSRPTReport(metrics.TLSRPTHTTPS, nil)
	m.WatchCertificates(func() map[string]time.Time { return nil })
	if got := m.Domain("a.example", nil); got != metrics.Other {
		t.Errorf("nil Domain = %q", got)
	}
}

// TestInboundSlotsSeparate: sending domains cannot take the destination
// domains' slots.
func TestInboundSlotsSeparate(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t, metrics.Options{TopDomains: 1})
	m.InboundSession("spam1.example", 0)
	m.InboundSession("spam2.example", 0)
	if got := m.Domain("dest.example", nil); got != "dest.example" {
		t.Errorf("destination after inbound senders: %q, want its own slot", got)
	}
	if got := metricstest.Value(t, reg, "caliop_inbound_sessions_total", "domain", "other", "tls_version", "none"); got != 1 {
		t.Errorf("second sender: %v in other, want 1", got)
	}
	if got := metricstest.Value(t, reg, overflow); got != 1 {
		t.Errorf("overflow %v, want 1", got)
	}
}

// TestNoBuildInfo: an empty version leaves caliop_build_info to the caller.
func TestNoBuildInfo(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics.New(reg, "", metrics.Options{})
	if n := metricstest.Series(t, reg, "caliop_build_info"); n != 0 {
		t.Errorf("%d caliop_build_info series", n)
	}
}

func TestTLSRPTReceived(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "", metrics.Options{})
	m.TLSRPTReceived("example.net", 10, map[string]int64{"certificate-expired": 2, "made-up": 1})
	for _, tc := range []struct {
		result string
		want   float64
	}{{"success", 10}, {"certificate-expired", 2}, {"other", 1}} {
		var got float64
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "caliop_tlsrpt_received_sessions_total" {
				continue
			}
			for _, mm := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range mm.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["domain"] == "example.net" && labels["result"] == tc.result {
					got = mm.GetCounter().GetValue()
				}
			}
		}
		if got != tc.want {
			t.Errorf("result %s = %v, want %v", tc.result, got, tc.want)
		}
	}
}

// TestBusiestTakeSlots: once the slots are taken, a domain seen often
// enough takes the slot of the quietest one, whose series are dropped, so
// the top domains are the busiest, not the first seen.
func TestBusiestTakeSlots(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg, "", metrics.Options{TopDomains: 2})
	send := func(d string, n int) {
		for range n {
			m.Delivered(metrics.Destination{Domain: d}, metrics.ProtectionTLS, 1)
		}
	}
	send("first.example", 1)
	send("second.example", 30)
	send("busy.example", 20) // the first 9 go to other, then it takes first.example's slot
	vals := metricstest.LabelValues(t, reg, delivered, "domain")
	if !vals["busy.example"] || !vals["second.example"] || vals["first.example"] {
		t.Errorf("domain labels %v, want busy.example and second.example (first.example dropped)", vals)
	}
	if got := metricstest.Value(t, reg, delivered, "domain", "busy.example", "protection", "tls"); got != 11 {
		t.Errorf("busy.example counted %v after taking the slot, want 11", got)
	}
	if got := metricstest.Value(t, reg, delivered, "domain", "other", "protection", "tls"); got != 9 {
		t.Errorf("other = %v, want 9 (busy.example before it took the slot)", got)
	}
	send("once.example", 1)
	if vals := metricstest.LabelValues(t, reg, delivered, "domain"); vals["once.example"] {
		t.Error("a domain seen once took a slot")
	}
}
