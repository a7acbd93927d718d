package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil) = %v, want 0", got)
	}
}

func TestMessageBodySize(t *testing.T) {
	for _, size := range []int{1, 78, 4096} {
		m := message(size)
		_, body, ok := bytes.Cut(m, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("message(%d) has no body", size)
		}
		if n := len(body); n < size || n > size+2 {
			t.Errorf("message(%d) body is %d bytes", size, n)
		}
		if !bytes.HasSuffix(body, []byte("\r\n")) || bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("message(%d) body lines are not CRLF-terminated", size)
		}
	}
}

func TestDNSAnswers(t *testing.T) {
	s, err := startDNS("Bench.Test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  string
	}{
		{"bench.test.", dns.TypeMX, dns.RcodeSuccess, "mx.bench.test."},
		{"MX.bench.test.", dns.TypeA, dns.RcodeSuccess, "127.0.0.1"},
		{"mx.bench.test.", dns.TypeAAAA, dns.RcodeSuccess, ""},
		{"other.test.", dns.TypeMX, dns.RcodeNameError, ""},
	} {
		for _, network := range []string{"udp", "tcp"} {
			q := new(dns.Msg)
			q.SetQuestion(tc.name, tc.qtype)
			c := &dns.Client{Net: network, Timeout: time.Second}
			r, _, err := c.Exchange(q, s.Addr)
			if err != nil {
				t.Fatalf("%s %s over %s: %v", tc.name, dns.Type(tc.qtype), network, err)
			}
			got := ""
			for _, rr := range r.Answer {
				switch rr := rr.(type) {
				case *dns.MX:
					got = rr.Mx
				case *dns.A:
					got = rr.A.String()
				}
			}
			if r.Rcode != tc.rcode || got != tc.want {
				t.Errorf("%s %s over %s = %s %q, want %s %q", tc.name, dns.Type(tc.qtype), network, dns.RcodeToString[r.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
			}
		}
	}
	if n := queryCounts(s.Queries())["MX bench.test."]; n != 2 {
		t.Errorf("counted %d MX queries for bench.test., want 2", n)
	}
}
