package relay

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/tlsrpt"
)

const enforceMX2 = "version: STSv1\r\nmode: enforce\r\nmx: mx2.example.test\r\nmax_age: 86400\r\n"

// TestMTASTSEnforceSkipsUnlistedMX: MX1 (preferred) is not in the
// enforced policy, MX2 is: the message goes to MX2, and MX1 is never even
// connected to (RFC 8461 §5.1).
func TestMTASTSEnforceSkipsUnlistedMX(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sts: true})
	mx1 := w.mx("mx1.example.test", mxtest.Behavior{})
	mx2 := w.mx("mx2.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test", "mx2.example.test")
	w.stsPolicy("example.test", "1", enforceMX2)

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") || !strings.Contains(r[0], "mx2.example.test") {
		t.Fatalf("reply %q, want 250 from mx2.example.test", r[0])
	}
	if n := mx1.Connections(); n != 0 {
		t.Errorf("MX1, outside the policy, got %d connections", n)
	}
	if n := len(mx2.Messages()); n != 1 {
		t.Errorf("MX2 stored %d messages, want 1", n)
	}
	if n := w.tally.Successes("example.test"); n != 1 {
		t.Errorf("TLS-RPT successes = %d, want 1 (%+v)", n, w.tally.Counts(""))
	}
}

// TestMTASTSEnforceBadCertificate: the only admitted MX presents a
// self-signed certificate. The default level (encrypt) would take it; the
// enforced policy does not: 4.7.x, no MAIL FROM, reported.
func TestMTASTSEnforceBadCertificate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sts: true})
	bad := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx2.example.test"}, SelfSigned: true})
	mx2 := w.mx("mx2.example.test", mxtest.Behavior{Cert: &bad})
	w.domain("example.test", "mx2.example.test")
	w.stsPolicy("example.test", "1", enforceMX2)

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	const want = "451 4.7.5 <a@example.test> MTA-STS policy 1 of example.test in force: mx2.example.test [127.0.1.1]: certificate-not-trusted"
	if !strings.HasPrefix(r[0], want) {
		t.Fatalf("reply %q, want %q", r[0], want)
	}
	if n := mx2.MailCount(); n != 0 {
		t.Errorf("MAIL FROM sent %d times to an MX that failed the policy", n)
	}
	if n := w.tally.Failures("example.test", tlsrpt.CertificateNotTrusted); n != 1 {
		t.Errorf("certificate-not-trusted reported %d times, want 1 (%+v)", n, w.tally.Counts(""))
	}
}

// TestMTASTSTestingDeliversAndReports: in testing mode the same MX gets
// the message, and what enforce would have refused is reported (RFC 8461
// §5.2): a self-signed certificate, and an MX outside the policy.
func TestMTASTSTestingDeliversAndReports(t *testing.T) {
	t.Parallel()
	for _, withLog := range []bool{true, false} {
		t.Run(fmt.Sprintf("log=%v", withLog), func(t *testing.T) {
			t.Parallel()
			testMTASTSTesting(t, withLog)
		})
	}
}

// testMTASTSTesting runs it; without a logger the deliverer must not
// fail (a nil Log is a valid Deliverer).
func testMTASTSTesting(t *testing.T, withLog bool) {
	w := newWorld(t, worldOpts{sts: true})
	if !withLog {
		w.deliver.Log = nil
	}
	bad := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx2.example.test"}, SelfSigned: true})
	mx2 := w.mx("mx2.example.test", mxtest.Behavior{Cert: &bad})
	other := w.mx("mx.other.test", mxtest.Behavior{})
	w.domain("example.test", "mx2.example.test")
	w.domain("other.test", "mx.other.test")
	w.stsPolicy("example.test", "1", strings.Replace(enforceMX2, "enforce", "testing", 1))
	w.stsPolicy("other.test", "7", "version: STSv1\nmode: testing\nmx: mx.elsewhere.test\nmax_age: 86400\n")

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test", "b@other.test"}, simpleBody)
	for i, rep := range r {
		if !strings.HasPrefix(rep, "250") {
			t.Errorf("recipient %d: %q, want 250 (testing mode delivers)", i, rep)
		}
	}
	if len(mx2.Messages()) != 1 || len(other.Messages()) != 1 {
		t.Errorf("stored %d and %d messages, want 1 and 1", len(mx2.Messages()), len(other.Messages()))
	}
	if n := w.tally.Failures("example.test", tlsrpt.CertificateNotTrusted); n != 1 {
		t.Errorf("example.test: certificate-not-trusted reported %d times, want 1 (%+v)", n, w.tally.Counts(""))
	}
	if n := w.tally.Failures("other.test", tlsrpt.ValidationFailure); n != 1 {
		t.Errorf("other.test: validation-failure (MX not in policy) reported %d times, want 1 (%+v)", n, w.tally.Counts(""))
	}
}

// TestMTASTSNoAdmittedMX: an enforced policy that admits none of the MX
// hosts is a temporary 4.7.x at RCPT in SMTP mode, and no MX is touched.
func TestMTASTSNoAdmittedMX(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sts: true})
	mx1 := w.mx("mx1.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test")
	w.stsPolicy("example.test", "1", enforceMX2)

	rcpt, _ := transact(t, w.smtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(rcpt[0], "451 4.7.5") || !strings.Contains(rcpt[0], "mx1.example.test") {
		t.Errorf("RCPT → %q, want 451 4.7.5 naming the MX", rcpt[0])
	}
	if n := mx1.Connections(); n != 0 {
		t.Errorf("MX outside the policy got %d connections", n)
	}
}

// TestMTASTSRefetchAfterFailure: the only MX the cached policy admits is
// down; the domain has moved to MX2 and updated its policy without a new
// id. The failed delivery fetches the policy again and goes to MX2 in the
// same transaction; a second failure within 5 minutes does not fetch.
func TestMTASTSRefetchAfterFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sts: true})
	w.dns.Add("mx1.example.test. 60 IN A 127.0.1.99") // nothing listens
	mx2 := w.mx("mx2.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test", "mx2.example.test")
	ps := w.stsPolicy("example.test", "1", strings.Replace(enforceMX2, "mx2", "mx1", 1))
	// Cache the policy that admits only MX1.
	if r := w.sts.Lookup(t.Context(), "example.test"); r.Policy == nil || r.Policy.MX[0] != "mx1.example.test" {
		t.Fatalf("setup: %+v", r)
	}
	ps.Set(enforceMX2 + "mx: mx1.example.test\r\n")

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") || !strings.Contains(r[0], "mx2.example.test") {
		t.Fatalf("reply %q, want 250 from mx2.example.test after the re-fetch", r[0])
	}
	if n := len(mx2.Messages()); n != 1 {
		t.Errorf("MX2 stored %d messages, want 1", n)
	}
	if n := ps.requests.Load(); n != 2 {
		t.Errorf("policy fetched %d times, want 2", n)
	}

	// MX2 goes down too: 4xx, and no new fetch within 5 minutes.
	mx2.CloseConnections()
	w.mu.Lock()
	for k := range w.addrs {
		if strings.HasSuffix(k, ":25") {
			delete(w.addrs, k)
		}
	}
	w.mu.Unlock()
	r = lmtpTransact(t, w.lmtp, []string{"b@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "451") {
		t.Errorf("reply %q with every MX down, want 451", r[0])
	}
	if n := ps.requests.Load(); n != 2 {
		t.Errorf("policy fetched %d times, want still 2 (rate limit)", n)
	}
}

// outcomes records TLS-RPT outcomes as they come.
type outcomes struct {
	mu   sync.Mutex
	list []tlsrpt.Outcome
}

func (o *outcomes) Record(x tlsrpt.Outcome) { o.mu.Lock(); o.list = append(o.list, x); o.mu.Unlock() }

// TestMTASTSOutcomeDetails: a session under an MTA-STS policy is reported
// with the policy string and the addresses of both ends (RFC 8460 §4.4).
func TestMTASTSOutcomeDetails(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{sts: true})
	rec := &outcomes{}
	w.deliver.Report = rec
	w.mx("mx2.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx2.example.test")
	w.stsPolicy("example.test", "1", enforceMX2)
	if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q", r[0])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.list) != 1 {
		t.Fatalf("%d outcomes, want 1", len(rec.list))
	}
	o := rec.list[0]
	if o.Policy != tlsrpt.PolicySTS || !o.Success || !strings.Contains(o.PolicyText, "mx: mx2.example.test") || o.ReceivingIP != "127.0.1.1" || o.SendingIP != "127.0.0.1" {
		t.Errorf("outcome %+v", o)
	}
}
