package resolver_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// portServer answers every A query with 192.0.2.1, except those it is
// told to drop, and records the source port of each query.
type portServer struct {
	pc    net.PacketConn
	mu    sync.Mutex
	ports []int
	drop  int // queries still to leave unanswered
}

func startPortServer(t *testing.T) *portServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &portServer{pc: pc}
	t.Cleanup(func() { pc.Close() })
	go s.serve()
	return s
}

func (s *portServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		q := new(dns.Msg)
		if q.Unpack(buf[:n]) != nil || len(q.Question) != 1 {
			continue
		}
		s.mu.Lock()
		s.ports = append(s.ports, from.(*net.UDPAddr).Port)
		drop := s.drop > 0
		if drop {
			s.drop--
		}
		s.mu.Unlock()
		if drop {
			continue
		}
		resp := new(dns.Msg)
		resp.SetReply(q)
		rr, _ := dns.NewRR(q.Question[0].Name + " 300 IN A 192.0.2.1")
		resp.Answer = []dns.RR{rr}
		out, _ := resp.Pack()
		s.pc.WriteTo(out, from)
	}
}

func (s *portServer) seen() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.ports...)
}

// TestUDPSocketKept: queries to a loopback server, one after the other,
// all leave from one socket (one source port).
func TestUDPSocketKept(t *testing.T) {
	t.Parallel()
	s := startPortServer(t)
	r := newResolver(t, s.pc.LocalAddr().String())
	for _, name := range []string{"a.test", "b.test", "c.test", "d.test"} {
		if _, _, err := r.Exchange(context.Background(), name, dns.TypeA); err != nil {
			t.Fatal(err)
		}
	}
	ports := s.seen()
	for _, p := range ports[1:] {
		if p != ports[0] {
			t.Fatalf("source ports %v; want one socket for all four queries", ports)
		}
	}
}

// TestUDPSocketDroppedAfterTimeout: a socket whose query went unanswered
// is closed, never used again (its late answer could still come).
func TestUDPSocketDroppedAfterTimeout(t *testing.T) {
	t.Parallel()
	s := startPortServer(t)
	r := newResolver(t, s.pc.LocalAddr().String())
	if _, _, err := r.Exchange(context.Background(), "a.test", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.drop = 1
	s.mu.Unlock()
	if _, _, err := r.Exchange(context.Background(), "b.test", dns.TypeA); err == nil {
		t.Fatal("unanswered query: no error")
	}
	if _, _, err := r.Exchange(context.Background(), "c.test", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	ports := s.seen()
	if len(ports) != 3 || ports[0] != ports[1] || ports[2] == ports[1] {
		t.Fatalf("source ports %v; want the first socket kept for the second query, then a new one after its timeout", ports)
	}
}
