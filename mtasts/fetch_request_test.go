package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestFetchRequest checks what Fetch asks for: the name it dials, the SNI,
// the URL path, Host and User-Agent, for domain spellings that all mean the
// same policy host (RFC 8461 §3.3).
func TestFetchRequest(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	policy := readFixture(t, "rfc8461-3.2-policy.txt")
	tests := []struct {
		domain, host string
	}{
		{domain: "example.test", host: "mta-sts.example.test"},
		{domain: "Example.TEST.", host: "mta-sts.example.test"},
		{domain: "bücher.example", host: "mta-sts.xn--bcher-kva.example"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			t.Parallel()
			s := newPolicyServer(t, ca.Leaf(t, testpki.LeafOptions{Names: []string{tt.host}}), serve(200, "text/plain", policy))
			p, err := s.fetcher(ca.Pool).Fetch(t.Context(), tt.domain)
			if err != nil {
				t.Fatalf("Fetch(%q): %v", tt.domain, err)
			}
			if p.Mode != ModeEnforce || len(p.MX) != 3 {
				t.Errorf("policy %+v, want the RFC example", p)
			}
			sni, dialed, paths, agents, hosts := s.record()
			checks := []struct {
				what      string
				got       []string
				want      string
				substring bool
			}{
				{what: "dialed", got: dialed, want: tt.host + ":443"},
				{what: "SNI", got: sni, want: tt.host},
				{what: "path", got: paths, want: "/.well-known/mta-sts.txt"},
				{what: "Host", got: hosts, want: tt.host},
				{what: "User-Agent", got: agents, want: "caliop-mta-sts", substring: true},
			}
			for _, c := range checks {
				if len(c.got) != 1 || !c.substring && c.got[0] != c.want || c.substring && !strings.Contains(c.got[0], c.want) {
					t.Errorf("%s %q, want once %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestFetchFailsEarly covers errors that need no policy host: the dialer
// fails, none is given, or the domain is not a domain name.
func TestFetchFailsEarly(t *testing.T) {
	t.Parallel()
	refused := errors.New("connection refused by test")
	tests := []struct {
		name    string
		domain  string
		dial    func(context.Context, string, string) (net.Conn, error)
		errText string
		dials   int32
	}{
		{name: "dial error", domain: "example.test", dial: func(context.Context, string, string) (net.Conn, error) { return nil, refused },
			errText: "mta-sts policy fetch failed: mta-sts.example.test: " + refused.Error(), dials: 1},
		{name: "no DialContext", domain: "example.test", errText: "Fetcher.DialContext is nil"},
		{name: "empty domain", domain: "", errText: "empty domain name"},
		{name: "bad domain", domain: "a..example", errText: "empty label"},
		{name: "domain with a path", domain: "example.test/x", errText: `label "test/x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dials atomic.Int32
			f := &Fetcher{}
			if tt.dial != nil {
				f.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					return tt.dial(ctx, network, addr)
				}
			}
			p, err := f.Fetch(t.Context(), tt.domain)
			if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), tt.errText) {
				t.Fatalf("Fetch(%q) = %+v, %v; want ErrFetch saying %q", tt.domain, p, err, tt.errText)
			}
			if n := dials.Load(); n != tt.dials {
				t.Errorf("%d dials, want %d", n, tt.dials)
			}
		})
	}
	_, err := (&Fetcher{DialContext: tests[0].dial}).Fetch(t.Context(), "example.test")
	if !errors.Is(err, refused) {
		t.Errorf("error %v does not wrap the dialer's error", err)
	}
}

// TestFetchSilentHost: a host that accepts the connection but never
// completes the TLS handshake costs no more than the caller's deadline.
func TestFetchSilentHost(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	held := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			held <- c // hold it open, say nothing
		}
	}()
	t.Cleanup(func() {
		select {
		case c := <-held:
			c.Close()
		default:
		}
	})
	f := &Fetcher{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, ln.Addr().String())
	}}
	const timeout = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	_, err = f.Fetch(ctx, "example.test")
	if elapsed := time.Since(start); elapsed > timeout+5*time.Second {
		t.Errorf("Fetch returned after %v, ctx timeout %v", elapsed, timeout)
	}
	if !errors.Is(err, ErrFetch) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch error %v, want ErrFetch wrapping context.DeadlineExceeded", err)
	}
}

// TestFetchOldTLS: a policy host that offers only TLS 1.1 is refused.
func TestFetchOldTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := newPolicyServer(t, ca.Leaf(t, testpki.LeafOptions{Names: []string{testPolicyHost}}), serve(200, "text/plain", "x"),
		func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 })
	_, err := s.fetcher(ca.Pool).Fetch(t.Context(), testDomain)
	if !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("Fetch error %v, want ErrFetch for the protocol version", err)
	}
	if n := s.requests.Load(); n != 0 {
		t.Errorf("server saw %d requests, want 0", n)
	}
}
