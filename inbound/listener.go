package inbound

import (
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/caliop/relay/internal/smtpfront"
	"go.uber.org/zap"
)

// listener admits connections within Limits.MaxConnections and
// Limits.MaxPerIP, and none while draining; the others are answered 421
// (RFC 5321 §3.8: a server may refuse a connection with 421) and closed
// before go-smtp sees them.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.s.admit(raw); c != nil {
			return c, nil
		}
	}
}

// admit wraps raw in a clientConn holding a connection slot, or refuses it.
func (s *Server) admit(raw net.Conn) *clientConn {
	host := s.opts.Hostname
	if s.draining.Load() {
		refuse(raw, smtpfront.ReplyLine(smtpfront.ShuttingDown(host)))
		return nil
	}
	ip := remoteIP(raw)
	s.mu.Lock()
	over := len(s.conns) >= s.opts.Limits.MaxConnections || s.perIP[ip] >= s.opts.Limits.MaxPerIP
	var c *clientConn
	if !over {
		c = newClientConn(s, raw)
		s.conns[c] = struct{}{}
		s.perIP[ip]++
	}
	s.mu.Unlock()
	if over {
		s.opts.Log.Info("too many connections", zap.String("client", raw.RemoteAddr().String()))
		refuse(raw, smtpfront.ReplyLine(smtpfront.TooManyConnections(host)))
	}
	return c
}

// release gives back c's connection slot.
func (s *Server) release(c *clientConn) {
	ip := remoteIP(c.Conn)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
}

// refuse says line and closes. A fresh connection's send buffer is empty,
// so the write does not hold up the accept loop.
func refuse(raw net.Conn, line string) {
	raw.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(raw, line)
	raw.Close()
}

// remoteIP is the client's address without port, IPv4-mapped addresses
// unmapped, as the per-IP key.
func remoteIP(c net.Conn) string {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return ap.Addr().Unmap().String()
}
