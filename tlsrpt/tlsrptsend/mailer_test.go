package tlsrptsend

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// TestTLSRPTMailThroughCaliop: a day's report for example.test goes, the
// next day, to the mailto: address of its _smtp._tls record through
// Caliop's own outbound path, reaches the MX as multipart/report, and its
// delivery is not counted in the reports.
func TestTLSRPTMailThroughCaliop(t *testing.T) {
	dns := dnstest.Start(t)
	ca := testpki.NewCA(t)
	mx := mxtest.Start(t, "mx.report.test", ca, mxtest.Behavior{})
	dns.Add(
		`_smtp._tls.example.test. 60 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@report.test"`,
		"report.test. 60 IN MX 10 mx.report.test.",
		"mx.report.test. 60 IN A 127.0.1.1",
	)
	res, err := resolver.New(resolver.Config{Servers: []string{dns.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	deliverer := &delivery.Deliverer{
		Hostname: "relay.test", DNS: res, Port: 25, Roots: ca.Pool, ConnectTimeout: 5 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "127.0.1.1:25" {
				return nil, fmt.Errorf("dial %s: refused", addr)
			}
			return d.DialContext(ctx, network, mx.Addr)
		},
	}
	engine := &policy.Engine{DNS: res, Default: policy.Requirement{Level: policy.Encrypt, MinTLS: 0x0303}}
	st, _ := store.Open(t.TempDir())
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	opts := Options{
		Store: st, DNS: res,
		OrganizationName: "Caliop test", ContactInfo: "postmaster@relay.test", Submitter: "relay.test", From: "tlsrpt@relay.test",
		Now: clock, Delay: func() time.Duration { return 0 }, FlushInterval: 10 * time.Millisecond,
		Log: zaptest.NewLogger(t),
	}
	rec, err := NewRecorder(opts)
	if err != nil {
		t.Fatal(err)
	}
	deliverer.Report = rec // as in serve: the mailer's copy must not record
	opts.SendMail = Mailer(engine, deliverer)
	rep := &Reporter{Recorder: rec, Sender: NewSender(rec, opts)}
	rep.Record(tlsrpt.Outcome{Domain: "example.test", Policy: tlsrpt.PolicySTS, MX: "mx.example.test", Success: true})
	rep.Record(tlsrpt.Outcome{Domain: "example.test", Policy: tlsrpt.PolicySTS, MX: "mx.example.test", Result: tlsrpt.CertificateExpired})
	if err := rep.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(14 * time.Hour) // 02:00 the next day
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rep.Run(ctx); close(done) }()
	msgs := mx.WaitMessages(t, 1, 10*time.Second)
	cancel()
	<-done

	m := msgs[0]
	data := string(m.Data)
	if m.From != "tlsrpt@relay.test" || strings.Join(m.To, ",") != "tlsrpt@report.test" || !m.TLS {
		t.Errorf("envelope %q → %v, TLS %v", m.From, m.To, m.TLS)
	}
	if !strings.Contains(data, `report-type="tlsrpt"`) && !strings.Contains(data, "report-type=tlsrpt") {
		t.Error("report message lacks report-type=tlsrpt")
	}
	for _, want := range []string{"multipart/report", "TLS-Report-Domain: example.test", "TLS-Report-Submitter: relay.test", "TLS-Required: No", "application/tlsrpt+gzip"} {
		if !strings.Contains(data, want) {
			t.Errorf("report message lacks %q", want)
		}
	}
	r, err := rep.Report("report.test", now)
	if err == nil && r != nil && len(r.Policies) > 0 {
		t.Errorf("the report's own delivery was counted: %+v", r.Policies)
	}
}
