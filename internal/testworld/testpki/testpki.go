// Package testpki creates a certificate authority and leaf certificates
// inside a test, so that TLS tests run against real X.509 verification
// (RFC 5280 path validation as done by crypto/x509) without any file or
// key from outside the test.
//
// Every key is ECDSA P-256 and every certificate is signed with
// ECDSA-SHA256. Nothing is cached between calls: two tests never share a
// CA unless they pass the same *CA around.
package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CA is a root certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	Pool *x509.CertPool // contains only the root CA
	PEM  []byte         // root certificate in PEM (for SSL_CERT_FILE in subprocess tests)
	// chain is what a server sends above its leaf: the intermediates,
	// this one first; empty for a root.
	chain [][]byte
}

// Intermediate returns a CA signed by ca. Leaves it makes carry it in
// their chain, as a server sends its intermediates; Pool and PEM stay the
// root's.
func (ca *CA) Intermediate(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "Caliop test intermediate", Organization: []string{"testpki"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	cert := sign(t, tmpl, ca.Cert, key, ca.Key)
	return &CA{Cert: cert, Key: key, Pool: ca.Pool, PEM: ca.PEM, chain: append([][]byte{cert.Raw}, ca.chain...)}
}

// LeafOptions describes a leaf certificate made by CA.Leaf.
type LeafOptions struct {
	// Names become DNS SANs, or IP SANs when a name parses as an IP
	// address. The first name is also the subject CommonName. No names
	// gives a certificate without SANs.
	Names []string
	// NotBefore and NotAfter bound the validity; zero means now-1h and
	// now+24h. A NotAfter in the past gives an expired certificate.
	NotBefore, NotAfter time.Time
	// SelfSigned signs the leaf with its own key instead of the CA's, so
	// that verification against CA.Pool fails with an unknown authority.
	SelfSigned bool
}

// NewCA returns a fresh CA valid from now-1h to now+24h. It fails t on
// any error.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "Caliop test CA", Organization: []string{"testpki"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	cert := sign(t, tmpl, tmpl, key, key)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{
		Cert: cert,
		Key:  key,
		Pool: pool,
		PEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
	}
}

// Leaf returns a server certificate described by o. The chain holds the
// leaf and, for an intermediate CA, the intermediates (a root is not
// sent); the Leaf field is set.
func (ca *CA) Leaf(t testing.TB, o LeafOptions) tls.Certificate {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "testpki leaf"},
		NotBefore:             o.NotBefore,
		NotAfter:              o.NotAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(24 * time.Hour)
	}
	if len(o.Names) > 0 {
		tmpl.Subject.CommonName = o.Names[0]
	}
	for _, n := range o.Names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	parent, signer := ca.Cert, ca.Key
	if o.SelfSigned {
		parent, signer = tmpl, key
	}
	cert := sign(t, tmpl, parent, key, signer)
	chain := [][]byte{cert.Raw}
	if !o.SelfSigned {
		chain = append(chain, ca.chain...)
	}
	return tls.Certificate{
		Certificate: chain,
		PrivateKey:  key,
		Leaf:        cert,
	}
}

// WriteFiles writes a leaf described by o to dir as a PEM certificate file
// (leaf only) and a PEM PKCS #8 key file (mode 0600), and returns their
// paths. Each call writes new files, so several leaves can share dir.
func (ca *CA) WriteFiles(t testing.TB, dir string, o LeafOptions) (certFile, keyFile string) {
	t.Helper()
	leaf := ca.Leaf(t, o)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatalf("testpki: marshal key: %v", err)
	}
	f, err := os.CreateTemp(dir, "leaf-*.crt")
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	certFile = f.Name()
	err = pem.Encode(f, &pem.Block{Type: "CERTIFICATE", Bytes: leaf.Leaf.Raw})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testpki: write %s: %v", certFile, err)
	}
	keyFile = filepath.Join(dir, strings.TrimSuffix(filepath.Base(certFile), ".crt")+".key")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	kf, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	_, err = kf.Write(keyPEM)
	if cerr := kf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("testpki: write %s: %v", keyFile, err)
	}
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: generate key: %v", err)
	}
	return key
}

func newSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testpki: serial: %v", err)
	}
	return n
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("testpki: create certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parse certificate: %v", err)
	}
	return cert
}
