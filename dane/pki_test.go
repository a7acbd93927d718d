package dane_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/caliop/relay/dane"
)

// testNow is the instant every test verifies at; certificates are valid
// from an hour before it to a day after unless a test says otherwise.
func testNow() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// issued is a certificate with its private key.
type issued struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// certOpts describes a certificate made by issue.
type certOpts struct {
	cn                  string
	names               []string // DNS SANs
	ca                  bool
	notBefore, notAfter time.Time // zero: testNow()-1h, testNow()+24h
	// eku replaces the leaf's serverAuth; noEKU leaves the extension out.
	eku   []x509.ExtKeyUsage
	noEKU bool
}

// issue makes an ECDSA P-256 certificate signed by parent, or self-signed
// when parent is nil. It fails t on any error.
func issue(t testing.TB, o certOpts, parent *issued) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: o.cn},
		DNSNames:     o.names,
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if o.eku != nil {
		tmpl.ExtKeyUsage = o.eku
	}
	if o.noEKU {
		tmpl.ExtKeyUsage = nil
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = testNow().Add(24 * time.Hour)
	}
	if o.ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.ExtKeyUsage = nil
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{cert: cert, key: key}
}

// testPKI is a root CA, an intermediate it signed, and leaves.
type testPKI struct {
	root, inter *issued
	leaf        *issued // named for mx.example.org, signed by inter
	other       *issued // named for other.example.net, signed by inter
	expired     *issued // named for mx.example.org, expired, signed by inter
	self        *issued // self-signed, expired, named for other.example.net
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{}
	p.root = issue(t, certOpts{cn: "Test Root", ca: true}, nil)
	p.inter = issue(t, certOpts{cn: "Test Intermediate", ca: true}, p.root)
	p.leaf = issue(t, certOpts{cn: "mx.example.org", names: []string{"mx.example.org"}}, p.inter)
	p.other = issue(t, certOpts{cn: "other.example.net", names: []string{"other.example.net"}}, p.inter)
	p.expired = issue(t, certOpts{
		cn: "mx.example.org", names: []string{"mx.example.org"},
		notBefore: testNow().AddDate(-1, 0, 0), notAfter: testNow().AddDate(0, 0, -1),
	}, p.inter)
	p.self = issue(t, certOpts{
		cn: "other.example.net", names: []string{"other.example.net"},
		notBefore: testNow().AddDate(-2, 0, 0), notAfter: testNow().AddDate(-1, 0, 0),
	}, nil)
	return p
}

// record returns the TLSA record with the given parameters that matches
// cert.
func record(usage, selector, matching uint8, cert *x509.Certificate) dane.TLSA {
	data := cert.Raw
	if selector == dane.SelectorSPKI {
		data = cert.RawSubjectPublicKeyInfo
	}
	switch matching {
	case dane.MatchSHA256:
		sum := sha256.Sum256(data)
		data = sum[:]
	case dane.MatchSHA512:
		sum := sha512.Sum512(data)
		data = sum[:]
	}
	return dane.TLSA{Usage: usage, Selector: selector, MatchingType: matching, Data: data}
}

// chainOf returns the certificates of its arguments, in order.
func chainOf(certs ...*issued) []*x509.Certificate {
	out := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		out[i] = c.cert
	}
	return out
}
