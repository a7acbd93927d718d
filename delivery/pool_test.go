package delivery

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestPoolBounded: connections to 10,000 distinct MX hosts are kept up to
// MaxIdle in all; the others are closed, not held.
func TestPoolBounded(t *testing.T) {
	p := &Pool{Idle: time.Minute, MaxIdle: 100}
	t.Cleanup(p.Close)
	for i := range 10000 {
		a, b := net.Pipe()
		go func() { // the MX side: reads until closed
			buf := make([]byte, 64)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		c := newClient(a, "", "")
		c.Ext = map[string]string{"PIPELINING": ""} // reuse owes no RSET round trip
		p.put(poolKey{addr: "192.0.2.1:25", host: fmt.Sprintf("mx%d.test", i)}, c)
	}
	if n := p.Len(); n != 100 {
		t.Errorf("pool holds %d idle connections, want MaxIdle 100", n)
	}
	if c := p.get(poolKey{addr: "192.0.2.1:25", host: "mx5.test"}, time.Now().Add(time.Second)); c == nil {
		t.Error("a kept connection is not handed out")
	}
	if n := p.Len(); n != 99 {
		t.Errorf("after one get: %d idle, want 99", n)
	}
}
