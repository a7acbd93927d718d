package certs

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestExpiry: the expiry of the current certificate per host, for
// caliop_certificate_expiry_timestamp_seconds.
func TestExpiry(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	notAfter := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), testpki.LeafOptions{Names: []string{"MX1.example.test", "mta-sts.example.test"}, NotAfter: notAfter})
	f, err := NewFiles(certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Expiry()
	if len(got) != 2 || !got["mx1.example.test"].Equal(notAfter) || !got["mta-sts.example.test"].Equal(notAfter) {
		t.Errorf("Files.Expiry() = %v, want both names at %v", got, notAfter)
	}

	dirURL, _ := countingCA(t)
	cache := filepath.Join(t.TempDir(), "acme")
	a, err := NewACME(ACMEConfig{Directory: dirURL, Hosts: testHosts, CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Expiry(); len(got) != 0 {
		t.Errorf("ACME.Expiry() before any certificate = %v, want empty", got)
	}
	mx := writeCached(t, cache, ca, "mx.example.test")
	if got := a.Expiry(); len(got) != 1 || !got["mx.example.test"].Equal(mx.Leaf.NotAfter) {
		t.Errorf("ACME.Expiry() = %v, want mx.example.test at %v", got, mx.Leaf.NotAfter)
	}
}
