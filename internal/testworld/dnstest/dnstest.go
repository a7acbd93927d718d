// Package dnstest runs a fake DNS server on 127.0.0.1 for hermetic tests.
//
// It answers from records added in zone-file syntax (RFC 1035 §5.1) like a
// validating recursive resolver would: NXDOMAIN for a name without records
// and NODATA for a name with records of other types only (RFC 2308 §2),
// CNAME chains followed within its data (RFC 1034 §3.6.2), and the AD bit
// (RFC 4035 §3.2.3) on answers for names marked authentic. Rules make it
// fail on purpose: a fixed rcode, silence, or truncated UDP answers.
package dnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Server is a fake DNS server listening on UDP and TCP on the same port.
// It is safe for concurrent use.
type Server struct {
	Addr string // "127.0.0.1:port", same port for UDP and TCP

	t   testing.TB // nil when made by New
	udp *dns.Server
	tcp *dns.Server

	mu       sync.Mutex
	records  map[string][]dns.RR // lowercase owner name → records
	rcodes   map[key]int
	drops    map[key]bool
	auth     map[string]bool // per-name override of authAll
	authAll  bool
	truncate bool
	queries  []dns.Question
}

// key identifies a rule: lowercase FQDN and type.
type key struct {
	name  string
	qtype uint16
}

// Start starts a server on 127.0.0.1 with a random port, the same for UDP
// and TCP, and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatalf("%v", err)
	}
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// New starts a server like Start, for code without a testing.TB such as
// examples. The caller must Close it; Add panics on a bad record.
func New() (*Server, error) {
	s := &Server{
		records: make(map[string][]dns.RR),
		rcodes:  make(map[key]int),
		drops:   make(map[key]bool),
		auth:    make(map[string]bool),
	}
	pc, l, err := listen()
	if err != nil {
		return nil, fmt.Errorf("dnstest: listen: %w", err)
	}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serveDNS)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			s.Close()
			return nil, fmt.Errorf("dnstest: server on %s did not start", s.Addr)
		}
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.udp.ShutdownContext(ctx)
	s.tcp.ShutdownContext(ctx)
}

// listen binds UDP on a random port of 127.0.0.1, then TCP on the same
// port, trying again with another port if TCP's is taken.
func listen() (net.PacketConn, net.Listener, error) {
	var err error
	for range 10 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		var l net.Listener
		l, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
	}
	return nil, nil, err
}

// Add adds records in zone-file syntax, for example
// "example.test. 300 IN MX 10 mx1.example.test.". Names are relative to the
// root. A record that does not parse fails the test (panics without one).
func (s *Server) Add(rrs ...string) {
	if s.t != nil {
		s.t.Helper()
	}
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err == nil && rr == nil {
			err = errors.New("no record")
		}
		if err != nil {
			s.fatalf("dnstest: Add(%q): %v", text, err)
			return
		}
		name := canonical(rr.Header().Name)
		s.mu.Lock()
		s.records[name] = append(s.records[name], rr)
		s.mu.Unlock()
	}
}

// SetRcode makes the server answer queries for name and qtype with rcode
// (e.g. dns.RcodeServerFailure) and no records.
func (s *Server) SetRcode(name string, qtype uint16, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rcodes[key{canonical(name), qtype}] = rcode
}

// Drop makes the server never answer queries for name and qtype.
func (s *Server) Drop(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drops[key{canonical(name), qtype}] = true
}

// SetAuthentic marks answers for name as DNSSEC-validated (AD set) or not,
// overriding SetAuthenticAll for that name.
func (s *Server) SetAuthentic(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auth[canonical(name)] = on
}

// SetAuthenticAll marks answers for every name without its own
// SetAuthentic as validated or not. The default is off.
func (s *Server) SetAuthenticAll(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authAll = on
}

// Truncate makes the server answer every UDP query with TC set and no
// records, so clients must retry over TCP (RFC 7766 §5).
func (s *Server) Truncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Queries returns every question received, over UDP or TCP, in order.
func (s *Server) Queries() []dns.Question {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]dns.Question(nil), s.queries...)
}

func (s *Server) fatalf(format string, args ...any) {
	if s.t == nil {
		panic(fmt.Sprintf(format, args...))
	}
	s.t.Helper()
	s.t.Fatalf(format, args...)
}

// canonical lowercases name and makes it fully qualified.
func canonical(name string) string {
	return dns.Fqdn(strings.ToLower(name))
}
