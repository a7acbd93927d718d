package resolver

import (
	"context"
	"sync"

	"github.com/miekg/dns"
)

// maxIdleUDP is how many idle UDP sockets a loopback server keeps.
const maxIdleUDP = 8

// udpSockets keeps the connected UDP sockets of one server on loopback
// between queries: a socket costs as much CPU as the query it carries.
// Off the host a socket per query stays: a fixed source port would leave
// only the 16-bit ID between an off-path attacker and a forged answer
// (RFC 5452 §9.2); nothing off the host can send from loopback.
type udpSockets struct {
	mu   sync.Mutex
	idle []*dns.Conn
}

// take returns an idle socket, or dials one.
func (u *udpSockets) take(ctx context.Context, c *dns.Client, addr string) (*dns.Conn, error) {
	if u != nil {
		u.mu.Lock()
		if n := len(u.idle); n > 0 {
			conn := u.idle[n-1]
			u.idle = u.idle[:n-1]
			u.mu.Unlock()
			return conn, nil
		}
		u.mu.Unlock()
	}
	return c.DialContext(ctx, addr)
}

// give keeps conn for the next query, or closes it. Only a socket whose
// query got its answer comes back: after a timeout or an error a late
// answer could still be on its way (miekg/dns skips answers whose ID does
// not match, but a fresh socket needs no such care).
func (u *udpSockets) give(conn *dns.Conn, answered bool) {
	if u != nil && answered {
		u.mu.Lock()
		if len(u.idle) < maxIdleUDP {
			u.idle = append(u.idle, conn)
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
	}
	conn.Close()
}
