package resolver

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means success
		servers []string
		timeout time.Duration
	}{
		{"no servers", Config{}, "resolver: no servers configured", nil, 0},
		{"no port", Config{Servers: []string{"127.0.0.1"}}, `resolver: server "127.0.0.1" is not host:port`, nil, 0},
		{"bare ipv6", Config{Servers: []string{"::1"}}, `resolver: server "::1" is not host:port`, nil, 0},
		{"hostname", Config{Servers: []string{"dns.example:53"}}, `resolver: server "dns.example:53": host "dns.example" is not an IP address`, nil, 0},
		{"bad port", Config{Servers: []string{"127.0.0.1:domain"}}, `resolver: server "127.0.0.1:domain": invalid port "domain"`, nil, 0},
		{"port zero", Config{Servers: []string{"127.0.0.1:0"}}, `invalid port "0"`, nil, 0},
		{"second bad", Config{Servers: []string{"127.0.0.1:53", "x"}}, `resolver: server "x" is not host:port`, nil, 0},
		{"negative timeout", Config{Servers: []string{"127.0.0.1:53"}, Timeout: -time.Second}, "resolver: negative timeout -1s", nil, 0},
		{"default timeout", Config{Servers: []string{"127.0.0.1:53", "[::1]:5353"}}, "", []string{"127.0.0.1:53", "[::1]:5353"}, DefaultTimeout},
		{"explicit timeout", Config{Servers: []string{"192.0.2.1:53"}, Timeout: 200 * time.Millisecond}, "", []string{"192.0.2.1:53"}, 200 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.cfg)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New() error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New() error = %v", err)
			}
			var got []string
			for _, s := range r.servers {
				got = append(got, s.addr)
			}
			if strings.Join(got, ",") != strings.Join(tc.servers, ",") {
				t.Errorf("servers = %v, want %v", got, tc.servers)
			}
			if r.timeout != tc.timeout {
				t.Errorf("timeout = %v, want %v", r.timeout, tc.timeout)
			}
		})
	}
}

// TestAuthenticTrust checks RFC 6840 §5.8 as applied by New: the AD bit
// counts only from loopback servers unless TrustAD is set.
func TestAuthenticTrust(t *testing.T) {
	t.Parallel()
	tests := []struct {
		server  string
		trustAD bool
		ad      bool
		want    bool
	}{
		{"127.0.0.1:53", false, true, true},
		{"127.0.0.53:53", false, true, true},
		{"[::1]:53", false, true, true},
		{"[::ffff:127.0.0.1]:53", false, true, true},
		{"127.0.0.1:53", false, false, false},
		{"192.0.2.1:53", false, true, false},
		{"[2001:db8::1]:53", false, true, false},
		{"10.0.0.1:53", false, true, false},
		{"192.0.2.1:53", true, true, true},
		{"[2001:db8::1]:53", true, true, true},
		{"192.0.2.1:53", true, false, false},
	}
	for _, tc := range tests {
		name := tc.server
		if tc.trustAD {
			name += " TrustAD"
		}
		if tc.ad {
			name += " AD"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := New(Config{Servers: []string{tc.server}, TrustAD: tc.trustAD})
			if err != nil {
				t.Fatal(err)
			}
			resp := new(dns.Msg)
			resp.AuthenticatedData = tc.ad
			if got := r.servers[0].authentic(resp); got != tc.want {
				t.Errorf("authentic = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTrustADHelper(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.255.255.254": true, "::1": true,
		"128.0.0.1": false, "::2": false, "0.0.0.0": false, "::": false,
	} {
		if got := trustAD(netip.MustParseAddr(addr), false); got != want {
			t.Errorf("trustAD(%s, false) = %v, want %v", addr, got, want)
		}
		if !trustAD(netip.MustParseAddr(addr), true) {
			t.Errorf("trustAD(%s, true) = false", addr)
		}
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"example.com", "example.com.", true},
		{"Example.COM.", "example.com.", true},
		{" mx.example.com ", "mx.example.com.", true},
		{".", ".", true},
		{"", "", false},
		{"a..b", "", false},
		{strings.Repeat("a", 64) + ".com", "", false},
	}
	for _, tc := range tests {
		got, err := canonical(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("canonical(%q) = %q, %v; want %q, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestRecords(t *testing.T) {
	t.Parallel()
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name    string
		answer  []dns.RR
		qname   string
		qtype   uint16
		want    []string
		wantErr error
	}{
		{
			name:   "plain",
			answer: []dns.RR{rr("a.test. 60 IN A 192.0.2.1"), rr("a.test. 60 IN A 192.0.2.2")},
			qname:  "a.test.", qtype: dns.TypeA,
			want: []string{"192.0.2.1", "192.0.2.2"},
		},
		{
			name: "chain out of order, any case",
			answer: []dns.RR{
				rr("c.test. 60 IN A 192.0.2.3"),
				rr("B.test. 60 IN CNAME C.TEST."),
				rr("a.test. 60 IN CNAME b.test."),
			},
			qname: "A.test.", qtype: dns.TypeA,
			want: []string{"192.0.2.3"},
		},
		{
			name:   "records of other owners ignored",
			answer: []dns.RR{rr("a.test. 60 IN CNAME b.test."), rr("a.test. 60 IN A 192.0.2.1"), rr("b.test. 60 IN A 192.0.2.2"), rr("x.test. 60 IN A 192.0.2.9")},
			qname:  "a.test.", qtype: dns.TypeA,
			want: []string{"192.0.2.2"},
		},
		{
			name:   "chain to nothing",
			answer: []dns.RR{rr("a.test. 60 IN CNAME b.test.")},
			qname:  "a.test.", qtype: dns.TypeA,
		},
		{
			name:   "cname asked for",
			answer: []dns.RR{rr("a.test. 60 IN CNAME b.test.")},
			qname:  "a.test.", qtype: dns.TypeCNAME,
			want: []string{"b.test."},
		},
		{
			name:   "loop",
			answer: []dns.RR{rr("a.test. 60 IN CNAME b.test."), rr("b.test. 60 IN CNAME a.test.")},
			qname:  "a.test.", qtype: dns.TypeA,
			wantErr: errCNAMELoop,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := records(tc.answer, tc.qname, tc.qtype)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var data []string
			for _, r := range got {
				data = append(data, strings.TrimPrefix(r.String(), r.Header().String()))
			}
			if strings.Join(data, ",") != strings.Join(tc.want, ",") {
				t.Errorf("records = %v, want %v", data, tc.want)
			}
		})
	}
}
