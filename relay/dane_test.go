package relay

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/tlsrpt"
)

// tlsa returns a TLSA record for host: usage and selector as given,
// matching type 1 (SHA-256) of cert.
func tlsa(host string, usage, selector int, cert *x509.Certificate) string {
	data := cert.Raw
	if selector == 1 {
		data = cert.RawSubjectPublicKeyInfo
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("_25._tcp.%s. 60 IN TLSA %d %d 1 %s", host, usage, selector, hex.EncodeToString(sum[:]))
}

// daneCase is one destination set up under DANE: the MX's certificate
// and the TLSA records published for it.
type daneCase struct {
	name    string
	cert    func(ca *testpki.CA) (tls.Certificate, *testpki.CA) // the MX's certificate and the CA that signed it
	records func(host string, leaf tls.Certificate, ca *testpki.CA) []string
	want    string            // reply prefix
	result  tlsrpt.ResultType // TLS-RPT failure expected, "" for a success
	mail    int               // MAIL FROM the MX saw
}

// TestDANE is RFC 7672 §3 seen from the MTA: what the MX presents, what
// the TLSA records say, what Caliop answers, whether MAIL FROM was sent.
func TestDANE(t *testing.T) {
	t.Parallel()
	const host = "mx.example.test"
	leafOf := func(c tls.Certificate) *x509.Certificate { return c.Leaf }
	selfSignedExpired := func(ca *testpki.CA) (tls.Certificate, *testpki.CA) {
		return ca.Leaf(t, testpki.LeafOptions{Names: []string{"elsewhere.invalid"}, SelfSigned: true, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}), ca
	}
	viaIntermediate := func(name string) func(ca *testpki.CA) (tls.Certificate, *testpki.CA) {
		return func(ca *testpki.CA) (tls.Certificate, *testpki.CA) {
			mid := ca.Intermediate(t)
			return mid.Leaf(t, testpki.LeafOptions{Names: []string{name}}), mid
		}
	}
	tests := []daneCase{
		{"3 1 1 matches an expired, misnamed, self-signed leaf: authenticated", selfSignedExpired,
			func(h string, leaf tls.Certificate, _ *testpki.CA) []string {
				return []string{tlsa(h, 3, 1, leafOf(leaf))}
			},
			"250", "", 1},
		{"3 1 1 of another key: refused before MAIL", selfSignedExpired,
			func(h string, _ tls.Certificate, ca *testpki.CA) []string { return []string{tlsa(h, 3, 1, ca.Cert)} },
			"451 4.7.5", tlsrpt.ValidationFailure, 0},
		{"2 1 1 matches the intermediate, leaf named for the MX", viaIntermediate(host),
			func(h string, _ tls.Certificate, mid *testpki.CA) []string { return []string{tlsa(h, 2, 1, mid.Cert)} },
			"250", "", 1},
		{"2 1 1 matches the intermediate, leaf named for another host", viaIntermediate("other.example.test"),
			func(h string, _ tls.Certificate, mid *testpki.CA) []string { return []string{tlsa(h, 2, 1, mid.Cert)} },
			"451 4.7.5", tlsrpt.CertificateHostMismatch, 0},
		{"2 0 1 matches a root the server did not send", func(ca *testpki.CA) (tls.Certificate, *testpki.CA) {
			return ca.Leaf(t, testpki.LeafOptions{Names: []string{host}}), ca
		},
			func(h string, _ tls.Certificate, ca *testpki.CA) []string { return []string{tlsa(h, 2, 0, ca.Cert)} },
			"451 4.7.5", tlsrpt.ValidationFailure, 0},
		{"only PKIX-TA and PKIX-EE records: TLS required, not authenticated", selfSignedExpired,
			func(h string, leaf tls.Certificate, _ *testpki.CA) []string {
				return []string{tlsa(h, 0, 0, leafOf(leaf)), tlsa(h, 1, 1, leafOf(leaf))}
			},
			"250", tlsrpt.TLSAInvalid, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{dane: true})
			leaf, signer := tc.cert(w.ca)
			mx := w.mx(host, mxtest.Behavior{Cert: &leaf})
			w.domain("example.test", host)
			w.dns.Add(tc.records(host, leaf, signer)...)

			r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
			if !strings.HasPrefix(r[0], tc.want) {
				t.Fatalf("reply %q, want %q", r[0], tc.want)
			}
			if n := mx.MailCount(); n != tc.mail {
				t.Errorf("MX saw MAIL FROM %d times, want %d", n, tc.mail)
			}
			if tc.result != "" {
				if n := w.tally.Failures("example.test", tc.result); n != 1 {
					t.Errorf("%s reported %d times, want 1 (%+v)", tc.result, n, w.tally.Counts(""))
				}
			} else if c := w.tally.Counts("example.test"); len(c) != 1 || !c[0].Success || c[0].Policy != tlsrpt.PolicyTLSA {
				t.Errorf("TLS-RPT outcomes %+v, want one tlsa success", c)
			}
		})
	}
}

// TestDANEUnusableMX: the TLSA lookup of MX1 fails (SERVFAIL, as for bogus
// data): MX1 is not tried at all, MX2 with a matching record takes the
// message (RFC 7672 §2.2).
func TestDANEUnusableMX(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true})
	mx1 := w.mx("mx1.example.test", mxtest.Behavior{})
	leaf := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx2.example.test"}})
	mx2 := w.mx("mx2.example.test", mxtest.Behavior{Cert: &leaf})
	w.domain("example.test", "mx1.example.test", "mx2.example.test")
	w.dns.Add(tlsa("mx2.example.test", 3, 1, leaf.Leaf))
	w.dns.SetRcode("_25._tcp.mx1.example.test", dns.TypeTLSA, dns.RcodeServerFailure)

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") || !strings.Contains(r[0], "mx2.example.test") {
		t.Fatalf("reply %q, want 250 from mx2", r[0])
	}
	if n := mx1.Connections(); n != 0 {
		t.Errorf("MX1, whose TLSA lookup failed, got %d connections", n)
	}
	if len(mx2.Messages()) != 1 {
		t.Errorf("MX2 stored %d messages", len(mx2.Messages()))
	}
	if n := w.tally.Failures("example.test", tlsrpt.DNSSECInvalid); n != 1 {
		t.Errorf("dnssec-invalid reported %d times, want 1", n)
	}
}

// TestDANEInsecureAddress: the MX host's address is not DNSSEC-secure, so
// DANE does not apply (RFC 7672 §2.2.2): no TLSA query, the default level.
func TestDANEInsecureAddress(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	w.dns.SetAuthentic("mx.example.test", false)
	w.dns.Add("_25._tcp.mx.example.test. 60 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") || len(mx.Messages()) != 1 {
		t.Fatalf("reply %q, %d stored; want delivered under the default", r[0], len(mx.Messages()))
	}
	for _, q := range w.dns.Queries() {
		if q.Qtype == dns.TypeTLSA {
			t.Errorf("TLSA queried for an insecure MX address: %s", q.Name)
		}
	}
}

// TestDANEBeatsMTASTS: DANE per MX takes precedence over MTA-STS
// (DESIGN.md): a DANE-EE match on a private certificate is delivered
// although the enforced MTA-STS policy would want WebPKI; and a TLSA
// mismatch is refused although the certificate is WebPKI-valid and the
// MX is in the policy.
func TestDANEBeatsMTASTS(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true, sts: true})
	private := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.private.test"}, SelfSigned: true})
	valid := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.valid.test"}})
	mxPrivate := w.mx("mx.private.test", mxtest.Behavior{Cert: &private})
	mxValid := w.mx("mx.valid.test", mxtest.Behavior{Cert: &valid})
	w.domain("private.test", "mx.private.test")
	w.domain("valid.test", "mx.valid.test")
	w.dns.Add(tlsa("mx.private.test", 3, 1, private.Leaf), tlsa("mx.valid.test", 3, 1, w.ca.Cert))
	w.stsPolicy("private.test", "1", "version: STSv1\nmode: enforce\nmx: mx.private.test\nmax_age: 86400\n")
	w.stsPolicy("valid.test", "1", "version: STSv1\nmode: enforce\nmx: mx.valid.test\nmax_age: 86400\n")

	r := lmtpTransact(t, w.lmtp, []string{"a@private.test", "b@valid.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") || len(mxPrivate.Messages()) != 1 {
		t.Errorf("DANE-EE on a private certificate under MTA-STS enforce: %q, want delivered", r[0])
	}
	if !strings.HasPrefix(r[1], "451 4.7.5") || mxValid.MailCount() != 0 {
		t.Errorf("TLSA mismatch with a WebPKI-valid certificate: %q (MAIL %d), want 451 4.7.5 before MAIL", r[1], mxValid.MailCount())
	}
}

// TestDANERequiredOverride: level dane for a domain whose MX has no TLSA
// records is a temporary failure naming the host.
func TestDANERequiredOverride(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true})
	w.engine.DANERequired = map[string]bool{"example.test": true}
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "451 4.7.5") || !strings.Contains(r[0], "mx.example.test") || mx.Connections() != 0 {
		t.Errorf("reply %q (%d connections), want 451 4.7.5 naming the MX and no connection", r[0], mx.Connections())
	}
}

// TestDANECNAME: the MX host name is an alias. The TLSA records at the end
// of the (secure) CNAME chain apply, and that name is sent as SNI
// (RFC 7672 §2.2.2, §8.1).
func TestDANECNAME(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{dane: true})
	leaf := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.example.test"}, SelfSigned: true})
	mx := w.mx("mx.example.test", mxtest.Behavior{Cert: &leaf})
	w.dns.Add("alias.example.test. 60 IN CNAME mx.example.test.", "example.test. 60 IN MX 10 alias.example.test.")
	w.dns.Add(tlsa("mx.example.test", 3, 1, leaf.Leaf))

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q, want delivered under the target's TLSA", r[0])
	}
	if m := mx.Messages(); len(m) != 1 || m[0].ServerName != "mx.example.test" {
		t.Errorf("stored %d messages, SNI %q; want 1 with SNI mx.example.test", len(m), func() string {
			if len(m) == 0 {
				return ""
			}
			return m[0].ServerName
		}())
	}
}
