package resolver

import (
	"context"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
)

// TestUDPSocketsOnlyOnLoopback: sockets are kept for loopback servers
// only; off the host every query has its own source port.
func TestUDPSocketsOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	r, err := New(Config{Servers: []string{"127.0.0.1:53", "[::1]:53", "192.0.2.1:53", "[2001:db8::1]:53", "[::ffff:127.0.0.1]:53"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, true, false, false, true} {
		if got := r.servers[i].udp != nil; got != want {
			t.Errorf("%s: sockets kept = %v, want %v", r.servers[i].addr, got, want)
		}
	}
}

// TestUDPSocketsBounded: many queries at once open many sockets, but
// only maxIdleUDP stay open afterwards.
func TestUDPSocketsBounded(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add("a.test. 300 IN A 192.0.2.1")
	r, err := New(Config{Servers: []string{s.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 * maxIdleUDP {
		wg.Go(func() {
			if _, _, err := r.Exchange(context.Background(), "a.test", dns.TypeA); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	u := r.servers[0].udp
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.idle) == 0 || len(u.idle) > maxIdleUDP {
		t.Fatalf("%d idle sockets after %d queries at once; want 1 to %d", len(u.idle), 4*maxIdleUDP, maxIdleUDP)
	}
}
