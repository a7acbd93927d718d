package delivery

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestProbe checks what a diagnostic connection reports, and that it
// never sends MAIL.
func TestProbe(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	wrong := ca.Leaf(t, testpki.LeafOptions{Names: []string{"other.example.test"}})
	good := mxtest.Start(t, "mx.example.test", ca, mxtest.Behavior{})
	misnamed := mxtest.Start(t, "mx.example.test", ca, mxtest.Behavior{Cert: &wrong})
	plain := mxtest.Start(t, "mx.example.test", ca, mxtest.Behavior{NoSTARTTLS: true})
	var dialer net.Dialer
	d := &Deliverer{Hostname: "relay.test", Dial: dialer.DialContext, Roots: ca.Pool, ConnectTimeout: 5 * time.Second}
	ctx := context.Background()

	p, err := d.Probe(ctx, "mx.example.test", good.Addr)
	if err != nil || p.TLS == nil || p.TLS.Version < tls.VersionTLS12 || p.WebPKIErr != nil || !p.STARTTLS || !slices.Contains(p.Extensions, "PIPELINING") {
		t.Errorf("good MX: %+v, %v", p, err)
	}
	p, err = d.Probe(ctx, "mx.example.test", misnamed.Addr)
	if err != nil || p.TLS == nil || p.WebPKIErr == nil {
		t.Errorf("misnamed certificate: WebPKIErr %v, err %v; want a WebPKI error", p.WebPKIErr, err)
	}
	p, err = d.Probe(ctx, "mx.example.test", plain.Addr)
	if err != nil || p.STARTTLS || p.TLS != nil {
		t.Errorf("no STARTTLS: %+v, %v", p, err)
	}
	for _, s := range []*mxtest.Server{good, misnamed, plain} {
		if n := s.MailCount(); n != 0 {
			t.Errorf("probe sent MAIL %d times", n)
		}
	}
	if _, err := d.Probe(ctx, "mx.example.test", "127.0.0.1:1"); err == nil {
		t.Error("probe of a closed port: no error")
	}
}
