package server

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
)

// TestReadiness: /readyz is 200 while the store opens and a DNS server
// answers, 503 naming the cause when the DNS server is gone; `caliop
// Healthcheck` turns it into an exit status.
func TestReadiness(t *testing.T) {
	dns, err := dnstest.New()
	if err != nil {
		t.Fatal(err)
	}
	dns.Add(". 60 IN NS a.root.test.")
	res, err := resolver.New(resolver.Config{Servers: []string{dns.Addr}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := store.Open(t.TempDir())
	r := &readiness{store: st, dns: res}
	srv := httptest.NewServer(r)
	defer srv.Close()
	cfg := &config.Config{Metrics: config.Metrics{Listen: strings.TrimPrefix(srv.URL, "http://")}}

	var out, errOut bytes.Buffer
	if code := Healthcheck(cfg, &out, &errOut); code != 0 {
		t.Fatalf("ready: exit %d, %s", code, out.String())
	}
	dns.Close()
	r.mu.Lock()
	r.at = time.Time{} // past the cached verdict
	r.mu.Unlock()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("DNS down: /readyz %d, want 503", resp.StatusCode)
	}
	out.Reset()
	if code := Healthcheck(cfg, &out, &errOut); code != 1 || !strings.HasPrefix(errOut.String(), "caliop: Healthcheck: ") || !strings.Contains(errOut.String(), "dns:") || out.Len() != 0 {
		t.Errorf("DNS down: exit %d, stdout %q, stderr %q; want 1 and the error on stderr", code, out.String(), errOut.String())
	}
	if err := r.check(context.Background()); err == nil {
		t.Error("check() nil with DNS down")
	}
}
