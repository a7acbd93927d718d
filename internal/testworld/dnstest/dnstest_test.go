package dnstest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// ask sends one query with EDNS0 and DO over network and returns the reply.
func ask(t *testing.T, s *Server, network, name string, qtype uint16) (*dns.Msg, error) {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 200 * time.Millisecond}
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	q.SetEdns0(1232, true)
	resp, _, err := c.Exchange(q, s.Addr)
	return resp, err
}

// summary renders a response as "RCODE ad=bool tc=bool [rr; rr]".
func summary(m *dns.Msg) string {
	var rrs []string
	for _, rr := range m.Answer {
		h := rr.Header()
		rrs = append(rrs, strings.ToLower(h.Name)+" "+dns.Type(h.Rrtype).String()+" "+strings.TrimPrefix(rr.String(), h.String()))
	}
	return fmt.Sprintf("%s ad=%v tc=%v [%s]", dns.RcodeToString[m.Rcode], m.AuthenticatedData, m.Truncated, strings.Join(rrs, "; "))
}

func TestAnswers(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Add(
		"example.test. 300 IN MX 10 mx1.example.test.",
		"example.test. 300 IN TXT \"v=spf1\" \" -all\"",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"Alias.Example.Test. 300 IN CNAME mid.example.test.",
		"mid.example.test. 300 IN CNAME mx1.example.test.",
		"dangling.example.test. 300 IN CNAME gone.example.test.",
		"loop1.example.test. 300 IN CNAME loop2.example.test.",
		"loop2.example.test. 300 IN CNAME loop1.example.test.",
		"secure.example.test. 300 IN A 192.0.2.2",
	)
	s.SetAuthentic("secure.example.test", true)
	s.SetAuthentic("mid.example.test", true)
	s.SetAuthentic("mx1.example.test", true)
	s.SetRcode("fail.example.test", dns.TypeA, dns.RcodeServerFailure)
	s.SetRcode("example.test", dns.TypeTLSA, dns.RcodeRefused)

	tests := []struct {
		name  string
		qname string
		qtype uint16
		want  string
	}{
		{"records", "example.test.", dns.TypeMX, "NOERROR ad=false tc=false [example.test. MX 10 mx1.example.test.]"},
		{"any case", "EXAMPLE.test.", dns.TypeMX, "NOERROR ad=false tc=false [example.test. MX 10 mx1.example.test.]"},
		{"nodata", "example.test.", dns.TypeAAAA, "NOERROR ad=false tc=false []"},
		{"nxdomain", "nope.example.test.", dns.TypeA, "NXDOMAIN ad=false tc=false []"},
		{"authentic", "secure.example.test.", dns.TypeA, "NOERROR ad=true tc=false [secure.example.test. A 192.0.2.2]"},
		{"authentic target only", "mid.example.test.", dns.TypeA, "NOERROR ad=true tc=false [mid.example.test. CNAME mx1.example.test.; mx1.example.test. A 192.0.2.1]"},
		{"chain with unsigned link", "alias.example.test.", dns.TypeA, "NOERROR ad=false tc=false [alias.example.test. CNAME mid.example.test.; mid.example.test. CNAME mx1.example.test.; mx1.example.test. A 192.0.2.1]"},
		{"cname asked for", "alias.example.test.", dns.TypeCNAME, "NOERROR ad=false tc=false [alias.example.test. CNAME mid.example.test.]"},
		{"dangling cname", "dangling.example.test.", dns.TypeA, "NXDOMAIN ad=false tc=false [dangling.example.test. CNAME gone.example.test.]"},
		{"cname loop", "loop1.example.test.", dns.TypeA, "SERVFAIL ad=false tc=false []"},
		{"rcode rule", "fail.example.test.", dns.TypeA, "SERVFAIL ad=false tc=false []"},
		{"rcode rule is per type", "fail.example.test.", dns.TypeMX, "NXDOMAIN ad=false tc=false []"},
		{"refused", "example.test.", dns.TypeTLSA, "REFUSED ad=false tc=false []"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := ask(t, s, "udp", tc.qname, tc.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if got := summary(resp); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAuthenticAll(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Add("a.test. 60 IN A 192.0.2.1", "b.test. 60 IN A 192.0.2.2")
	s.SetAuthenticAll(true)
	s.SetAuthentic("b.test.", false)
	for name, want := range map[string]bool{"a.test.": true, "b.test.": false, "missing.test.": true} {
		resp, err := ask(t, s, "udp", name, dns.TypeA)
		if err != nil {
			t.Fatal(err)
		}
		if resp.AuthenticatedData != want {
			t.Errorf("%s: AD = %v, want %v", name, resp.AuthenticatedData, want)
		}
	}
}

func TestADNeedsDO(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Add("a.test. 60 IN A 192.0.2.1")
	s.SetAuthenticAll(true)
	q := new(dns.Msg)
	q.SetQuestion("a.test.", dns.TypeA)
	resp, err := dns.Exchange(q, s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if resp.AuthenticatedData {
		t.Error("AD set for a query without DO or AD")
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Add("a.test. 60 IN A 192.0.2.1")
	s.Truncate(true)
	udp, err := ask(t, s, "udp", "a.test.", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(udp), "NOERROR ad=false tc=true []"; got != want {
		t.Errorf("udp: got %s, want %s", got, want)
	}
	tcp, err := ask(t, s, "tcp", "a.test.", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(tcp), "NOERROR ad=false tc=false [a.test. A 192.0.2.1]"; got != want {
		t.Errorf("tcp: got %s, want %s", got, want)
	}
	if got := len(s.Queries()); got != 2 {
		t.Errorf("recorded %d queries, want 2", got)
	}
}

func TestDrop(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Add("a.test. 60 IN A 192.0.2.1")
	s.Drop("A.TEST", dns.TypeA)
	for _, network := range []string{"udp", "tcp"} {
		_, err := ask(t, s, network, "a.test.", dns.TypeA)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%s: err = %v, want a timeout", network, err)
		}
	}
	if _, err := ask(t, s, "udp", "a.test.", dns.TypeAAAA); err != nil {
		t.Errorf("AAAA not dropped: %v", err)
	}
}

func TestQueries(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ask(t, s, "udp", "one.test.", dns.TypeMX)
	ask(t, s, "tcp", "Two.test.", dns.TypeTXT)
	got := s.Queries()
	want := []dns.Question{
		{Name: "one.test.", Qtype: dns.TypeMX, Qclass: dns.ClassINET},
		{Name: "Two.test.", Qtype: dns.TypeTXT, Qclass: dns.ClassINET},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Queries() = %v, want %v", got, want)
	}
	got[0].Name = "changed."
	if s.Queries()[0].Name != "one.test." {
		t.Error("Queries() returned shared storage")
	}
}

// fatalTB records Fatalf instead of stopping the goroutine.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestAddParseError(t *testing.T) {
	t.Parallel()
	s := Start(t)
	tb := &fatalTB{TB: t}
	s.t = tb
	s.Add("bad.test. 60 IN A not-an-address")
	if !strings.Contains(tb.msg, "not-an-address") {
		t.Errorf("Fatalf message = %q, want the bad record", tb.msg)
	}
}

func TestNewWithoutTB(t *testing.T) {
	t.Parallel()
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Add("a.test. 60 IN A 192.0.2.1")
	resp, err := ask(t, s, "tcp", "a.test.", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := summary(resp), "NOERROR ad=false tc=false [a.test. A 192.0.2.1]"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "bad.test.") {
			t.Errorf("Add without a TB: recovered %v, want a panic naming the record", r)
		}
	}()
	s.Add("bad.test. 60 IN MX ten mx.test.")
}
