package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func verify(ca *CA, cert *x509.Certificate, name string) error {
	_, err := cert.Verify(x509.VerifyOptions{
		DNSName:   name,
		Roots:     ca.Pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err
}

func TestNewCA(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	if !ca.Cert.IsCA || ca.Cert.NotAfter.Before(time.Now().Add(23*time.Hour)) || ca.Cert.NotBefore.After(time.Now()) {
		t.Fatalf("CA IsCA=%v valid %v..%v", ca.Cert.IsCA, ca.Cert.NotBefore, ca.Cert.NotAfter)
	}
	block, rest := pem.Decode(ca.PEM)
	if block == nil || block.Type != "CERTIFICATE" || len(rest) != 0 {
		t.Fatalf("PEM = %q", ca.PEM)
	}
	if got, err := x509.ParseCertificate(block.Bytes); err != nil || !got.Equal(ca.Cert) {
		t.Fatalf("PEM does not hold the CA certificate: %v", err)
	}
	if other := NewCA(t); other.Cert.Equal(ca.Cert) {
		t.Fatal("two CAs are the same certificate")
	}
}

func TestLeafVerification(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	other := NewCA(t)
	now := time.Now()
	tests := []struct {
		name   string
		ca     *CA // verifying pool; nil: ca
		opts   LeafOptions
		verify string
		want   func(error) bool // nil: verification passes
	}{
		{name: "valid DNS name", opts: LeafOptions{Names: []string{"mx1.example.org"}}, verify: "mx1.example.org"},
		{name: "second SAN", opts: LeafOptions{Names: []string{"mx1.example.org", "mx2.example.org"}}, verify: "mx2.example.org"},
		{name: "wildcard", opts: LeafOptions{Names: []string{"*.example.org"}}, verify: "mx.example.org"},
		{name: "IP SAN", opts: LeafOptions{Names: []string{"127.0.0.1"}}, verify: "127.0.0.1"},
		{
			name: "wrong name", opts: LeafOptions{Names: []string{"mx1.example.org"}}, verify: "mx.attacker.example",
			want: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
		{
			name: "expired", opts: LeafOptions{Names: []string{"mx1.example.org"}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Minute)}, verify: "mx1.example.org",
			want: func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			},
		},
		{
			name: "not yet valid", opts: LeafOptions{Names: []string{"mx1.example.org"}, NotBefore: now.Add(time.Hour)}, verify: "mx1.example.org",
			want: func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			},
		},
		{
			name: "self-signed", opts: LeafOptions{Names: []string{"mx1.example.org"}, SelfSigned: true}, verify: "mx1.example.org",
			want: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			name: "other CA", ca: other, opts: LeafOptions{Names: []string{"mx1.example.org"}}, verify: "mx1.example.org",
			want: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leaf := ca.Leaf(t, tt.opts)
			if leaf.Leaf == nil || len(leaf.Certificate) != 1 {
				t.Fatalf("Leaf field %v, chain length %d; want leaf set and chain of 1", leaf.Leaf, len(leaf.Certificate))
			}
			pool := ca
			if tt.ca != nil {
				pool = tt.ca
			}
			err := verify(pool, leaf.Leaf, tt.verify)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("verify: %v", err)
			case tt.want != nil && err == nil:
				t.Fatal("verify passed, want an error")
			case tt.want != nil && !tt.want(err):
				t.Fatalf("verify error %T %v is not the expected kind", err, err)
			}
		})
	}
}

// TestLeafHandshake checks that the key and chain work in a real TLS
// handshake, over an in-memory pipe.
func TestLeafHandshake(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	leaf := ca.Leaf(t, LeafOptions{Names: []string{"mx.example.org"}})
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	deadline := time.Now().Add(10 * time.Second)
	cc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	errc := make(chan error, 1)
	go func() {
		srv := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{leaf}})
		errc <- srv.Handshake()
	}()
	cli := tls.Client(cc, &tls.Config{RootCAs: ca.Pool, ServerName: "mx.example.org"})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := cli.ConnectionState().PeerCertificates[0]; !got.Equal(leaf.Leaf) {
		t.Fatal("client saw a different certificate")
	}
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, LeafOptions{Names: []string{"mx.example.org"}})
	certFile2, keyFile2 := ca.WriteFiles(t, dir, LeafOptions{Names: []string{"mx.example.org"}})
	if certFile == certFile2 || keyFile == keyFile2 {
		t.Fatalf("second WriteFiles reused %s / %s", certFile, keyFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if len(pair.Certificate) != 1 {
		t.Fatalf("chain length %d, want 1", len(pair.Certificate))
	}
	if err := verify(ca, pair.Leaf, "mx.example.org"); err != nil {
		t.Fatalf("verify written leaf: %v", err)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %v, want 0600", perm)
	}
}

func TestIntermediate(t *testing.T) {
	ca := NewCA(t)
	mid := ca.Intermediate(t)
	leaf := mid.Leaf(t, LeafOptions{Names: []string{"mx.example.test"}})
	if len(leaf.Certificate) != 2 {
		t.Fatalf("chain of %d certificates, want leaf + intermediate", len(leaf.Certificate))
	}
	inter := x509.NewCertPool()
	inter.AddCert(mid.Cert)
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, Intermediates: inter, DNSName: "mx.example.test"}); err != nil {
		t.Errorf("leaf does not verify through the intermediate: %v", err)
	}
	if _, err := leaf.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: "mx.example.test"}); err == nil {
		t.Error("leaf verifies without its intermediate")
	}
}
