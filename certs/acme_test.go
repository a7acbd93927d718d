package certs

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caliop/relay/internal/testworld/testpki"
)

// countingCA stands in for an ACME directory and counts the requests it
// gets; it answers none of them usefully.
func countingCA(t *testing.T) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	return s.URL + "/dir", hits
}

var testHosts = []string{"mx.example.test", "mta-sts.example.test"}

// TestACMEHostPolicy: a name outside Hosts is refused before anything is
// asked of the CA.
func TestACMEHostPolicy(t *testing.T) {
	t.Parallel()
	for _, dirURL := range []string{"https://127.0.0.1:1/dir", ""} {
		var hits *atomic.Int64
		if dirURL == "" {
			dirURL, hits = countingCA(t)
		}
		a, err := NewACME(ACMEConfig{Directory: dirURL, Hosts: testHosts, CacheDir: filepath.Join(t.TempDir(), "acme")})
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"evil.example.test", "example.test", "mx.example.test.evil.test", ""} {
			c, err := a.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
			if err == nil || c != nil {
				t.Errorf("%s: GetCertificate(%q) = %v, %v; want a refusal", dirURL, name, c, err)
				continue
			}
			if name != "" && !strings.Contains(err.Error(), "not configured") {
				t.Errorf("%s: GetCertificate(%q): %v; want the host policy's refusal", dirURL, name, err)
			}
		}
		if hits != nil && hits.Load() != 0 {
			t.Errorf("the CA got %d requests, want none", hits.Load())
		}
	}
}

// writeCached puts a certificate for host into the cache directory the way
// autocert stores it: the EC private key, then the chain, in PEM.
func writeCached(t *testing.T, dir string, ca *testpki.CA, host string) tls.Certificate {
	t.Helper()
	leaf := ca.Leaf(t, testpki.LeafOptions{Names: []string{host}})
	der, err := x509.MarshalECPrivateKey(leaf.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	for _, c := range leaf.Certificate {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	if err := os.WriteFile(filepath.Join(dir, host), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return leaf
}

// TestACMECached: a cached certificate is served without the CA, to a
// client naming its host, naming no host or an unknown one (DefaultHost),
// and CachedKey gives its key.
func TestACMECached(t *testing.T) {
	t.Parallel()
	dirURL, hits := countingCA(t)
	cache := filepath.Join(t.TempDir(), "acme")
	a, err := NewACME(ACMEConfig{Directory: dirURL, Hosts: testHosts, DefaultHost: "MX.example.test.", CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(cache); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("cache directory: %v, %v; want it created with mode 0700", st, err)
	}
	if k, ok := a.CachedKey("mx.example.test"); ok {
		t.Fatalf("CachedKey before any certificate = %v, want none", k)
	}
	ca := testpki.NewCA(t)
	mx := writeCached(t, cache, ca, "mx.example.test")
	sts := writeCached(t, cache, ca, "mta-sts.example.test")

	for _, tt := range []struct {
		sni  string
		want tls.Certificate
	}{
		{"mx.example.test", mx}, {"MTA-STS.example.test", sts}, {"", mx}, {"other.example.test", mx},
	} {
		state, err := handshake(t, STARTTLSConfig(a), &tls.Config{ServerName: tt.sni, InsecureSkipVerify: true})
		if err != nil {
			t.Errorf("SNI %q: %v", tt.sni, err)
			continue
		}
		if got := state.PeerCertificates[0]; !got.Equal(tt.want.Leaf) {
			t.Errorf("SNI %q: got the certificate for %v, want %v", tt.sni, got.DNSNames, tt.want.Leaf.DNSNames)
		}
	}
	if hits.Load() != 0 {
		t.Errorf("the CA got %d requests, want none", hits.Load())
	}

	k, ok := a.CachedKey("mx.example.test")
	if !ok || !mx.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(k) {
		t.Errorf("CachedKey(mx.example.test) = %v, %v; want the cached certificate's key", k, ok)
	}
	if k, ok := a.CachedKey("other.example.test"); ok {
		t.Errorf("CachedKey(other.example.test) = %v, want none", k)
	}
}

func TestACMETLSConfig(t *testing.T) {
	t.Parallel()
	a, err := NewACME(ACMEConfig{Directory: "https://127.0.0.1:1/dir", Hosts: testHosts, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	c := a.TLSConfig()
	if c.MinVersion != tls.VersionTLS12 || c.GetCertificate == nil {
		t.Errorf("TLSConfig: MinVersion %x, GetCertificate set %v", c.MinVersion, c.GetCertificate != nil)
	}
	if !strings.Contains(strings.Join(c.NextProtos, ","), "acme-tls/1") {
		t.Errorf("TLSConfig NextProtos = %v, want acme-tls/1 among them", c.NextProtos)
	}
}

func TestNewACMEErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ok := ACMEConfig{Directory: "https://ca.example/dir", Hosts: testHosts, CacheDir: dir}
	tests := []struct {
		name  string
		edit  func(*ACMEConfig)
		field string
	}{
		{"no directory", func(c *ACMEConfig) { c.Directory = "" }, "Directory"},
		{"no cache", func(c *ACMEConfig) { c.CacheDir = "" }, "CacheDir"},
		{"no hosts", func(c *ACMEConfig) { c.Hosts = nil }, "Hosts"},
		{"single-label host", func(c *ACMEConfig) { c.Hosts = []string{"localhost"} }, "Hosts"},
		{"default host not in hosts", func(c *ACMEConfig) { c.DefaultHost = "other.example.test" }, "DefaultHost"},
		{"cache not a directory", func(c *ACMEConfig) {
			f := filepath.Join(dir, "file")
			os.WriteFile(f, nil, 0o600)
			c.CacheDir = filepath.Join(f, "acme")
		}, "CacheDir"},
	}
	for _, tt := range tests {
		cfg := ok
		tt.edit(&cfg)
		_, err := NewACME(cfg)
		if !errors.Is(err, ErrACMEConfig) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: NewACME: %v; want ErrACMEConfig naming %s", tt.name, err, tt.field)
		}
	}
	if _, err := NewACME(ok); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

// TestTLSA311 checks against a digest computed by OpenSSL:
// openssl pkey -pubin -outform DER | sha256sum.
func TestTLSA311(t *testing.T) {
	t.Parallel()
	const pubPEM = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhkEvXY1lq/rhMdtGJhr0V1AiKgor
ikDt1mVWAUC50kGzsPFGkKoxFZUad35NhAs6qInPoSnJed2IBIH8k+XKVw==
-----END PUBLIC KEY-----
`
	b, _ := pem.Decode([]byte(pubPEM))
	pub, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	got, err := TLSA311(pub)
	const want = "3 1 1 a095a36a2f1dfc3728a551ff4b4db366fc31317c5c0d9a46e13b658d904ba397"
	if err != nil || got != want {
		t.Errorf("TLSA311 = %q, %v; want %q", got, err, want)
	}
	if _, err := TLSA311("not a key"); err == nil {
		t.Error("TLSA311 of a string: no error")
	}
}
