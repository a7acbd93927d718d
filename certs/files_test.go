package certs

import (
	"bytes"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/testpki"
)

func leafOf(t *testing.T, c *tls.Certificate, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	if c == nil || c.Leaf == nil || len(c.Certificate) == 0 || !bytes.Equal(c.Leaf.Raw, c.Certificate[0]) {
		t.Fatalf("GetCertificate returned %+v, want a certificate with its Leaf", c)
	}
	return c.Certificate[0]
}

// replace moves the pair (newCert, newKey) over (certFile, keyFile), as a
// certificate manager does when it renews.
func replace(t *testing.T, newCert, newKey, certFile, keyFile string) {
	t.Helper()
	for _, p := range [][2]string{{newCert, certFile}, {newKey, keyFile}} {
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFilesLoadAndReload(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx1.example.test"}})
	core, logs := observer.New(zap.InfoLevel)
	f, err := NewFiles(certFile, keyFile, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Now())
	f.Now, f.CheckInterval = clock.Now, time.Minute

	current := func() []byte {
		t.Helper()
		c, err := f.GetCertificate(&tls.ClientHelloInfo{ServerName: "mx1.example.test"})
		return leafOf(t, c, err)
	}
	c, err := f.GetCertificate(&tls.ClientHelloInfo{ServerName: "mx1.example.test"})
	first := leafOf(t, c, err)
	if got := c.Leaf.DNSNames; len(got) != 1 || got[0] != "mx1.example.test" {
		t.Fatalf("loaded certificate for %v, want mx1.example.test", got)
	}

	// A renewed pair: not seen before the interval has passed, seen after.
	c2, k2 := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx2.example.test"}})
	replace(t, c2, k2, certFile, keyFile)
	clock.Advance(59 * time.Second)
	if got := current(); !bytes.Equal(got, first) {
		t.Fatal("certificate changed before the check interval passed")
	}
	clock.Advance(time.Second)
	c, err = f.Current()
	second := leafOf(t, c, err)
	if bytes.Equal(second, first) || c.Leaf.DNSNames[0] != "mx2.example.test" {
		t.Fatalf("after the interval: certificate for %v, want the renewed one for mx2.example.test", c.Leaf.DNSNames)
	}
	if n := logs.FilterMessage("certificate reloaded").Len(); n != 1 {
		t.Errorf("%d \"certificate reloaded\" logs, want 1", n)
	}

	// A broken rewrite keeps the previous certificate and is logged once.
	if err := os.WriteFile(certFile, []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(time.Minute)
		if got := current(); !bytes.Equal(got, second) {
			t.Fatal("a failed reload replaced the certificate")
		}
	}
	failed := logs.FilterMessage("certificate reload failed, keeping the previous one").All()
	if len(failed) != 1 || !strings.Contains(failed[0].ContextMap()["error"].(string), certFile) {
		t.Fatalf("reload failure logs = %v, want one naming %s", failed, certFile)
	}

	// Repaired: picked up at the next check.
	c3, k3 := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx3.example.test"}})
	replace(t, c3, k3, certFile, keyFile)
	clock.Advance(time.Minute)
	if c, err := f.Current(); err != nil || c.Leaf.DNSNames[0] != "mx3.example.test" {
		t.Fatalf("after repair: %v, %v; want the certificate for mx3.example.test", c.Leaf.DNSNames, err)
	}
}

func TestFilesErrors(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx.example.test"}})
	_, otherKey := ca.WriteFiles(t, dir, testpki.LeafOptions{Names: []string{"mx.example.test"}})
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name, cert, key string
		want            error
		named           string
	}{
		{"no such certificate file", missing, keyFile, ErrCertFile, missing},
		{"certificate file not PEM", notPEM, keyFile, ErrCertFile, notPEM},
		{"certificate file holds a key", keyFile, keyFile, ErrCertFile, keyFile},
		{"no such key file", certFile, missing, ErrKeyFile, missing},
		{"key file not PEM", certFile, notPEM, ErrKeyFile, notPEM},
		{"key file holds a certificate", certFile, certFile, ErrKeyFile, certFile},
		{"key of another certificate", certFile, otherKey, ErrKeyMismatch, otherKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := NewFiles(tt.cert, tt.key, nil)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.named) {
				t.Fatalf("NewFiles = %v, %v; want %v naming %s", f, err, tt.want, tt.named)
			}
		})
	}
	if _, err := NewFiles(missing, keyFile, nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want it to wrap os.ErrNotExist", err)
	}
}

// TestSTARTTLSConfig: TLS 1.2 and 1.3 clients get the certificate, a client
// limited to TLS 1.1 is refused.
func TestSTARTTLSConfig(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), testpki.LeafOptions{Names: []string{"mx.example.test"}})
	f, err := NewFiles(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := STARTTLSConfig(f)
	tests := []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.3", tls.VersionTLS13, true},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.0", tls.VersionTLS10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			state, err := handshake(t, cfg, &tls.Config{
				ServerName: "mx.example.test",
				RootCAs:    ca.Pool,
				MinVersion: tls.VersionTLS10,
				MaxVersion: tt.version,
			})
			switch {
			case tt.ok && err != nil:
				t.Fatalf("handshake: %v", err)
			case tt.ok && state.Version != tt.version:
				t.Fatalf("negotiated %s, want %s", tls.VersionName(state.Version), tls.VersionName(tt.version))
			case !tt.ok && err == nil:
				t.Fatalf("handshake succeeded with %s, want a refusal", tls.VersionName(state.Version))
			}
		})
	}
}
