package relay

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/policy"
)

// series is one expected value of one series.
type series struct {
	name   string
	labels []string
	want   float64
}

func (w *world) checkSeries(want []series) {
	w.t.Helper()
	for _, s := range want {
		if got := w.metric(s.name, s.labels...); got != s.want {
			w.t.Errorf("%s%q = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
}

// TestMetricsDeliveries scripts one LMTP transaction over seven
// destinations and one SMTP transaction, then reads exact counts per
// label set.
func TestMetricsDeliveries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{
		overrides: map[string]policy.Requirement{
			"expired.test": {Level: policy.Verify, MinTLS: 0x0303},
			"legacy.test":  {Level: policy.None},
		},
		metrics: metrics.Options{Providers: map[string]string{".hosted.test": "hostco"}},
	})
	misnamed := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"elsewhere.test"}})
	expired := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.expired.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	w.mx("mx.pkix.test", mxtest.Behavior{})
	w.mx("mx.enc.test", mxtest.Behavior{Cert: &misnamed})
	w.mx("mx.expired.test", mxtest.Behavior{Cert: &expired})
	w.mx("mx.refused.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"f@refused.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}})
	w.mx("mx1.hosted.test", mxtest.Behavior{})
	w.mx("mx.legacy.test", mxtest.Behavior{NoSTARTTLS: true})
	w.mx("mx.smtp.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"x@smtp.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}})
	w.domain("pkix.test", "mx.pkix.test")
	w.domain("enc.test", "mx.enc.test")
	w.domain("expired.test", "mx.expired.test")
	w.domain("refused.test", "mx.refused.test")
	w.domain("customer.test", "mx1.hosted.test")
	w.domain("legacy.test", "mx.legacy.test")
	w.domain("smtp.test", "mx.smtp.test")

	rcpts := []string{"a@pkix.test", "b@pkix.test", "c@enc.test", "d@expired.test", "e@expired.test",
		"f@refused.test", "g@nxdomain.test", "h@customer.test", "i@legacy.test"}
	replies := lmtpTransact(t, w.lmtp, rcpts, simpleBody)
	for i, want := range []string{"250", "250", "250", "451 4.7.5", "451 4.7.5", "550", "550 5.1.2", "250", "250"} {
		if !strings.HasPrefix(replies[i], want) {
			t.Errorf("%s: %q, want %s", rcpts[i], replies[i], want)
		}
	}
	rcpt, data := transact(t, w.smtp, []string{"x@smtp.test", "y@smtp.test"}, simpleBody)
	if !strings.HasPrefix(rcpt[0], "550") || !strings.HasPrefix(rcpt[1], "250") || !strings.HasPrefix(data, "250") {
		t.Fatalf("SMTP transaction: %q, %q", rcpt, data)
	}

	const (
		sessions = "caliop_outbound_sessions_total"
		msgs     = "caliop_delivered_messages_total"
		rcptsN   = "caliop_delivered_recipients_total"
		failures = "caliop_delivery_failures_total"
	)
	w.checkSeries([]series{
		{sessions, []string{"domain", "pkix.test", "tls_version", "1.3", "auth", "pkix", "policy", "default"}, 1},
		{sessions, []string{"domain", "enc.test", "tls_version", "1.3", "auth", "encrypted", "policy", "default"}, 1},
		{sessions, []string{"domain", "refused.test", "tls_version", "1.3", "auth", "pkix", "policy", "default"}, 1},
		{sessions, []string{"domain", "hostco", "tls_version", "1.3", "auth", "pkix", "policy", "default"}, 1},
		{sessions, []string{"domain", "legacy.test", "tls_version", "none", "auth", "none", "policy", "override"}, 1},
		{sessions, []string{"domain", "smtp.test", "tls_version", "1.3", "auth", "pkix", "policy", "default"}, 1},
		{msgs, []string{"domain", "pkix.test", "protection", "tls-authenticated"}, 1},
		{rcptsN, []string{"domain", "pkix.test", "protection", "tls-authenticated"}, 2},
		{msgs, []string{"domain", "enc.test", "protection", "tls"}, 1},
		{msgs, []string{"domain", "hostco", "protection", "tls-authenticated"}, 1},
		{msgs, []string{"domain", "legacy.test", "protection", "plaintext"}, 1},
		{msgs, []string{"domain", "smtp.test", "protection", "tls-authenticated"}, 1},
		{rcptsN, []string{"domain", "smtp.test", "protection", "tls-authenticated"}, 1},
		{msgs, []string{"domain", "refused.test", "protection", "tls-authenticated"}, 0},
		{failures, []string{"domain", "expired.test", "result_type", "certificate-expired"}, 2},
		{failures, []string{"domain", "refused.test", "result_type", "refused"}, 1},
		{failures, []string{"domain", "nxdomain.test", "result_type", "dns"}, 1},
		{failures, []string{"domain", "smtp.test", "result_type", "refused"}, 1},
		{"caliop_plaintext_deliveries_total", []string{"domain", "legacy.test"}, 1},
		{"caliop_delivery_recipients_total", []string{"class", "2xx"}, 6},
		{"caliop_delivery_recipients_total", []string{"class", "4xx"}, 2},
		{"caliop_delivery_recipients_total", []string{"class", "5xx"}, 1},
		// Six LMTP routes were delivered (nxdomain.test had no plan), and
		// one SMTP transaction.
		{"caliop_delivery_duration_seconds", nil, 7},
		{"caliop_metrics_domain_overflow_total", nil, 2}, // customer.test as hostco: session and delivery
	})
	if n := w.metric(sessions, "domain", "expired.test", "tls_version", "1.3", "auth", "encrypted", "policy", "override"); n != 0 {
		t.Errorf("a session that failed the plan was counted: %v", n)
	}
}

// TestMetricsDANE: a TLSA match, a mismatch and a failed TLSA lookup.
func TestMetricsDANE(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true})
	leaf := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.match.test"}, SelfSigned: true})
	w.mx("mx.match.test", mxtest.Behavior{Cert: &leaf})
	w.mx("mx.mismatch.test", mxtest.Behavior{})
	w.mx("mx.bogus.test", mxtest.Behavior{})
	w.domain("match.test", "mx.match.test")
	w.domain("mismatch.test", "mx.mismatch.test")
	w.domain("bogus.test", "mx.bogus.test")
	w.dns.Add(tlsa("mx.match.test", 3, 1, leaf.Leaf), tlsa("mx.mismatch.test", 3, 1, w.ca.Cert))
	w.dns.SetRcode("_25._tcp.mx.bogus.test", dns.TypeTLSA, dns.RcodeServerFailure)

	r := lmtpTransact(t, w.lmtp, []string{"a@match.test", "b@mismatch.test", "c@bogus.test"}, simpleBody)
	for i, want := range []string{"250", "451 4.7.5", "451 4.7.5"} {
		if !strings.HasPrefix(r[i], want) {
			t.Errorf("reply %d: %q, want %s", i, r[i], want)
		}
	}
	w.checkSeries([]series{
		{"caliop_outbound_sessions_total", []string{"domain", "match.test", "tls_version", "1.3", "auth", "dane", "policy", "dane"}, 1},
		{"caliop_delivered_messages_total", []string{"domain", "match.test", "protection", "tls-authenticated"}, 1},
		{"caliop_dane_verifications_total", []string{"result", "match"}, 1},
		{"caliop_dane_verifications_total", []string{"result", "mismatch"}, 1},
		{"caliop_dane_verifications_total", []string{"result", "lookup-error"}, 1},
		{"caliop_dane_verifications_total", []string{"result", "unusable"}, 0},
		{"caliop_delivery_failures_total", []string{"domain", "mismatch.test", "result_type", "validation-failure"}, 1},
		{"caliop_delivery_failures_total", []string{"domain", "bogus.test", "result_type", "dnssec-invalid"}, 1},
	})
}

// TestMetricsPGP: an encrypted copy and a plaintext one in LMTP, and a
// recipient refused at RCPT because encryption is required.
func TestMetricsPGP(t *testing.T) {
	t.Parallel()
	a := pgpKey(t, "a@example.test")
	w := newWorld(t, worldOpts{pgp: &pgppolicy.Policy{Keys: fakeKeys{"a@example.test": a}, Default: pgppolicy.Opportunistic,
		Destinations: map[string]pgppolicy.Mode{"strict.test": pgppolicy.Required}}})
	w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test", "b@example.test"}, pgpBody)
	if !strings.HasPrefix(r[0], "250") || !strings.HasPrefix(r[1], "250") {
		t.Fatalf("replies %q", r)
	}
	rcpt, _ := transact(t, w.smtp, []string{"x@strict.test"}, pgpBody)
	if !strings.HasPrefix(rcpt[0], "450 4.7.1") {
		t.Fatalf("required without key: %q", rcpt[0])
	}
	w.checkSeries([]series{
		{"caliop_pgp_messages_total", []string{"decision", "encrypted"}, 1},
		{"caliop_pgp_messages_total", []string{"decision", "no-key"}, 1},
		{"caliop_delivered_messages_total", []string{"domain", "example.test", "protection", "pgp"}, 1},
		{"caliop_delivered_recipients_total", []string{"domain", "example.test", "protection", "pgp"}, 1},
		{"caliop_delivered_messages_total", []string{"domain", "example.test", "protection", "tls-authenticated"}, 1},
		{"caliop_delivery_failures_total", []string{"domain", "strict.test", "result_type", "policy"}, 1},
	})
}
