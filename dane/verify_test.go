package dane_test

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/dane"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	// A second hierarchy, for trust anchors the server's chain does not
	// lead to, and one with an expired intermediate.
	otherRoot := issue(t, certOpts{cn: "Other Root", ca: true}, nil)
	longRoot := issue(t, certOpts{
		cn: "Long Root", ca: true,
		notBefore: testNow().AddDate(-5, 0, 0), notAfter: testNow().AddDate(5, 0, 0),
	}, nil)
	oldInter := issue(t, certOpts{
		cn: "Old Intermediate", ca: true,
		notBefore: testNow().AddDate(-2, 0, 0), notAfter: testNow().AddDate(0, 0, -1),
	}, longRoot)
	oldLeaf := issue(t, certOpts{
		cn: "mx.example.org", names: []string{"mx.example.org"},
		notBefore: testNow().AddDate(-1, 0, 0), notAfter: testNow().AddDate(1, 0, 0),
	}, oldInter)
	notYet := issue(t, certOpts{
		cn: "mx.example.org", names: []string{"mx.example.org"},
		notBefore: testNow().AddDate(0, 0, 1), notAfter: testNow().AddDate(1, 0, 0),
	}, longRoot)
	wildcard := issue(t, certOpts{cn: "wild", names: []string{"*.example.org"}}, p.inter)
	cnOnly := issue(t, certOpts{cn: "mx.example.org"}, p.inter)
	cnButSAN := issue(t, certOpts{cn: "mx.example.org", names: []string{"other.example.net"}}, p.inter)
	selfNamed := issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}, ca: true}, nil)
	fromRoot := issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}}, p.root)
	clientOnly := issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, p.inter)
	noEKU := issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}, noEKU: true}, p.inter)
	anyEKU := issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}, eku: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}, p.inter)

	mx := []string{"mx.example.org"}
	tests := []struct {
		name        string
		records     []dane.TLSA
		chain       []*x509.Certificate
		names       []string
		want        error // nil: authenticated
		wantHost    bool  // errors.As finds an x509.HostnameError
		wantExpired bool  // errors.As finds an x509.CertificateInvalidError, Reason Expired
	}{
		// RFC 7672 §3.1.1: DANE-EE(3) ignores names, dates and the chain.
		{name: "3 1 1 matching an expired, misnamed, self-signed leaf authenticates",
			records: []dane.TLSA{record(3, 1, 1, p.self.cert)}, chain: chainOf(p.self), names: mx},
		{name: "3 0 1 matches the leaf certificate",
			records: []dane.TLSA{record(3, 0, 1, p.leaf.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "3 1 2 matches the leaf public key by SHA2-512",
			records: []dane.TLSA{record(3, 1, 2, p.leaf.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "3 0 2 matches the leaf certificate by SHA2-512",
			records: []dane.TLSA{record(3, 0, 2, p.leaf.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "3 0 0 matches the full leaf certificate",
			records: []dane.TLSA{record(3, 0, 0, p.leaf.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "3 1 0 matches the full leaf public key",
			records: []dane.TLSA{record(3, 1, 0, p.leaf.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "3 1 1 of another key does not match",
			records: []dane.TLSA{record(3, 1, 1, p.other.cert)}, chain: chainOf(p.leaf, p.inter), names: mx,
			want: dane.ErrNoMatch},
		{name: "3 1 1 matching the intermediate does not match: DANE-EE is the leaf only",
			records: []dane.TLSA{record(3, 1, 1, p.inter.cert)}, chain: chainOf(p.leaf, p.inter), names: mx,
			want: dane.ErrNoMatch},

		// RFC 7672 §3.1.2, §3.2.2: DANE-TA(2) needs a path and a name.
		{name: "2 1 1 matching the intermediate, leaf named for the MX",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "2 0 1 matching the intermediate, leaf named for the second reference identifier",
			records: []dane.TLSA{record(2, 0, 1, p.inter.cert)}, chain: chainOf(p.other, p.inter),
			names: []string{"mx.example.org", "other.example.net"}},
		{name: "2 1 1 matching the intermediate, leaf named for another name",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(p.other, p.inter), names: mx,
			want: dane.ErrNoMatch, wantHost: true},
		{name: "2 1 1 matching the intermediate, leaf expired",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(p.expired, p.inter), names: mx,
			want: dane.ErrNoMatch, wantExpired: true},
		// RFC 5280 §6.1.1(d): the trust anchor has no validity period
		// (OpenSSL's DANE-TA agrees); what is below it has.
		{name: "2 0 1 matching an expired trust anchor authenticates",
			records: []dane.TLSA{record(2, 0, 1, oldInter.cert)}, chain: chainOf(oldLeaf, oldInter), names: mx},
		{name: "2 0 2 matching an expired trust anchor authenticates",
			records: []dane.TLSA{record(2, 0, 2, oldInter.cert)}, chain: chainOf(oldLeaf, oldInter), names: mx},
		{name: "2 1 1 matching an expired trust anchor authenticates",
			records: []dane.TLSA{record(2, 1, 1, oldInter.cert)}, chain: chainOf(oldLeaf, oldInter, longRoot), names: mx},
		{name: "2 0 0 holding an expired trust anchor the server did not send authenticates",
			records: []dane.TLSA{record(2, 0, 0, oldInter.cert)}, chain: chainOf(oldLeaf), names: mx},
		{name: "2 1 1 matching the intermediate, leaf for clientAuth only",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(clientOnly, p.inter), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 1 1 matching the intermediate, leaf without EKU",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(noEKU, p.inter), names: mx},
		{name: "2 1 1 matching the intermediate, leaf with anyExtendedKeyUsage",
			records: []dane.TLSA{record(2, 1, 1, p.inter.cert)}, chain: chainOf(anyEKU, p.inter), names: mx},
		{name: "3 1 1 matching a leaf for clientAuth only: DANE-EE ignores EKU",
			records: []dane.TLSA{record(3, 1, 1, clientOnly.cert)}, chain: chainOf(clientOnly, p.inter), names: mx},
		{name: "2 0 1 matching the root through an expired intermediate",
			records: []dane.TLSA{record(2, 0, 1, longRoot.cert)}, chain: chainOf(oldLeaf, oldInter, longRoot), names: mx,
			want: dane.ErrNoMatch, wantExpired: true},
		{name: "2 0 1 matching the root, leaf not yet valid",
			records: []dane.TLSA{record(2, 0, 1, longRoot.cert)}, chain: chainOf(notYet, longRoot), names: mx,
			want: dane.ErrNoMatch, wantExpired: true},
		{name: "2 0 1 matching the root, leaf expired and not issued by the intermediate sent: a path error, not a date error",
			records: []dane.TLSA{record(2, 0, 1, longRoot.cert)}, chain: chainOf(p.expired, oldInter, longRoot), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 1 matching the root the server did not send",
			records: []dane.TLSA{record(2, 0, 1, p.root.cert)}, chain: chainOf(p.leaf, p.inter), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 1 matching the root the server sent",
			records: []dane.TLSA{record(2, 0, 1, p.root.cert)}, chain: chainOf(p.leaf, p.inter, p.root), names: mx},
		{name: "2 0 1 matching the root, chain sent out of order",
			records: []dane.TLSA{record(2, 0, 1, p.root.cert)}, chain: chainOf(p.leaf, p.root, p.inter), names: mx},
		{name: "2 0 1 matching the root, but the intermediate is missing",
			records: []dane.TLSA{record(2, 0, 1, p.root.cert)}, chain: chainOf(p.leaf, p.root), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 1 matching a sent certificate that did not issue the leaf",
			records: []dane.TLSA{record(2, 0, 1, otherRoot.cert)}, chain: chainOf(p.leaf, p.inter, otherRoot), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 1 matching the leaf itself: the leaf is not a trust anchor",
			records: []dane.TLSA{record(2, 0, 1, selfNamed.cert)}, chain: chainOf(selfNamed), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 1 matching the leaf sent twice: still not a trust anchor",
			records: []dane.TLSA{record(2, 0, 1, selfNamed.cert)}, chain: chainOf(selfNamed, selfNamed), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 0 0 holding the root the server did not send (RFC 7671 §5.2.2)",
			records: []dane.TLSA{record(2, 0, 0, p.root.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "2 1 0 holding the root key the server did not send (RFC 7671 §5.2.3)",
			records: []dane.TLSA{record(2, 1, 0, p.root.cert)}, chain: chainOf(p.leaf, p.inter), names: mx},
		{name: "2 1 0 holding the root key that signed the leaf directly",
			records: []dane.TLSA{record(2, 1, 0, p.root.cert)}, chain: chainOf(fromRoot), names: mx},
		{name: "2 1 0 holding the root key, leaf named for another name",
			records: []dane.TLSA{record(2, 1, 0, p.root.cert)}, chain: chainOf(p.other, p.inter), names: mx,
			want: dane.ErrNoMatch, wantHost: true},
		{name: "2 1 0 holding another key",
			records: []dane.TLSA{record(2, 1, 0, otherRoot.cert)}, chain: chainOf(p.leaf, p.inter), names: mx,
			want: dane.ErrNoMatch},
		{name: "2 1 0 holding the key of a self-signed leaf: not a trust anchor",
			records: []dane.TLSA{record(2, 1, 0, selfNamed.cert)}, chain: chainOf(selfNamed), names: mx,
			want: dane.ErrNoMatch},

		// RFC 7672 §3.2.3: reference identifier matching.
		{name: "wildcard DNS-ID matches one left-most label",
			records: []dane.TLSA{record(2, 0, 1, p.inter.cert)}, chain: chainOf(wildcard, p.inter), names: mx},
		{name: "wildcard DNS-ID does not match two labels",
			records: []dane.TLSA{record(2, 0, 1, p.inter.cert)}, chain: chainOf(wildcard, p.inter),
			names: []string{"a.mx.example.org"}, want: dane.ErrNoMatch, wantHost: true},
		{name: "CN-ID is used when there are no DNS-IDs",
			records: []dane.TLSA{record(2, 0, 1, p.inter.cert)}, chain: chainOf(cnOnly, p.inter), names: mx},
		{name: "CN-ID is ignored when there are DNS-IDs",
			records: []dane.TLSA{record(2, 0, 1, p.inter.cert)}, chain: chainOf(cnButSAN, p.inter), names: mx,
			want: dane.ErrNoMatch, wantHost: true},

		// Record sets.
		{name: "only 0 0 1 and 1 1 1 records, matching, are unusable",
			records: []dane.TLSA{record(0, 0, 1, p.root.cert), record(1, 1, 1, p.leaf.cert)},
			chain:   chainOf(p.leaf, p.inter, p.root), names: mx, want: dane.ErrNoUsable},
		{name: "one unusable record plus a matching 3 1 1",
			records: []dane.TLSA{{Usage: 3, Selector: 1, MatchingType: 1, Data: []byte{1, 2, 3}}, record(3, 1, 1, p.leaf.cert)},
			chain:   chainOf(p.leaf), names: mx},
		{name: "a failing 2 1 1 and a matching 3 1 1",
			records: []dane.TLSA{record(2, 1, 1, otherRoot.cert), record(3, 1, 1, p.leaf.cert)},
			chain:   chainOf(p.leaf), names: mx},
		// RFC 7671 §9 digest algorithm agility.
		{name: "3 1 1 matching is ignored next to a 3 1 2 of another key",
			records: []dane.TLSA{record(3, 1, 1, p.leaf.cert), record(3, 1, 2, p.other.cert)},
			chain:   chainOf(p.leaf), names: mx, want: dane.ErrNoMatch},
		{name: "3 1 2 matching next to a 3 1 1 of another key",
			records: []dane.TLSA{record(3, 1, 1, p.other.cert), record(3, 1, 2, p.leaf.cert)},
			chain:   chainOf(p.leaf), names: mx},
		{name: "3 1 1 matching next to a 3 0 2 of another certificate: other selector",
			records: []dane.TLSA{record(3, 1, 1, p.leaf.cert), record(3, 0, 2, p.other.cert)},
			chain:   chainOf(p.leaf), names: mx},
		{name: "3 1 0 matching next to a 3 1 2 of another key: Full always counts",
			records: []dane.TLSA{record(3, 1, 0, p.leaf.cert), record(3, 1, 2, p.other.cert)},
			chain:   chainOf(p.leaf), names: mx},
		{name: "3 1 1 matching next to a malformed 3 1 2: unusable records do not count",
			records: []dane.TLSA{record(3, 1, 1, p.leaf.cert), {Usage: 3, Selector: 1, MatchingType: 2, Data: []byte{1}}},
			chain:   chainOf(p.leaf), names: mx},
		{name: "empty chain",
			records: []dane.TLSA{record(3, 1, 1, p.leaf.cert)}, chain: nil, names: mx, want: dane.ErrNoMatch},
		{name: "no records at all",
			records: nil, chain: chainOf(p.leaf), names: mx, want: dane.ErrNoUsable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			set := dane.RRSet{Name: "mx.example.org", Records: tt.records, Secure: true}
			err := dane.Verify(set, tt.chain, tt.names, testNow())
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
			t.Log(err)
			var hostErr x509.HostnameError
			if got := errors.As(err, &hostErr); got != tt.wantHost {
				t.Errorf("errors.As(%v, HostnameError) = %v, want %v", err, got, tt.wantHost)
			}
			var invalid x509.CertificateInvalidError
			gotExpired := errors.As(err, &invalid) && invalid.Reason == x509.Expired
			if gotExpired != tt.wantExpired {
				t.Errorf("errors.As(%v, CertificateInvalidError{Expired}) = %v, want %v", err, gotExpired, tt.wantExpired)
			}
			if !strings.Contains(err.Error(), "mx.example.org") {
				t.Errorf("error %q does not name the TLSA base domain", err)
			}
		})
	}
}

// RFC 7672 §2.2: records of an insecure RRset are never used.
func TestVerifyInsecure(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	set := dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{record(3, 1, 1, p.leaf.cert)}}
	err := dane.Verify(set, chainOf(p.leaf), nil, testNow())
	if !errors.Is(err, dane.ErrInsecure) {
		t.Fatalf("Verify(insecure set) = %v, want ErrInsecure", err)
	}
}

// The expired leaf is named in the error, and DANE-TA dates are checked
// at the time given, not the clock.
func TestVerifyAtTime(t *testing.T) {
	t.Parallel()
	ca := issue(t, certOpts{cn: "Long CA", ca: true, notBefore: testNow().AddDate(-5, 0, 0), notAfter: testNow().AddDate(5, 0, 0)}, nil)
	leaf := issue(t, certOpts{
		cn: "mx.example.org", names: []string{"mx.example.org"},
		notBefore: testNow().AddDate(-1, 0, 0), notAfter: testNow().AddDate(0, 0, -1),
	}, ca)
	set := dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{record(2, 0, 1, ca.cert)}, Secure: true}
	chain := chainOf(leaf, ca)
	names := []string{"mx.example.org"}
	if err := dane.Verify(set, chain, names, leaf.cert.NotAfter.Add(-time.Minute)); err != nil {
		t.Errorf("Verify before the leaf expired = %v, want nil", err)
	}
	err := dane.Verify(set, chain, names, testNow())
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Cert != leaf.cert || invalid.Reason != x509.Expired {
		t.Errorf("Verify after the leaf expired = %v, want CertificateInvalidError{Expired} for the leaf", err)
	}
	if err == nil || !strings.Contains(err.Error(), `"CN=mx.example.org"`) {
		t.Errorf("error %v does not name the expired certificate", err)
	}
}
