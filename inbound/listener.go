package inbound

import (
	"net"

	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
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
		smtpfront.Refuse(raw, smtpfront.ShuttingDown(host))
		return nil
	}
	if !s.admission.Take(smtpfront.RemoteAddr(raw)) {
		s.opts.Log.Info("too many connections", zap.String("client", raw.RemoteAddr().String()))
		smtpfront.Refuse(raw, smtpfront.TooManyConnections(host))
		return nil
	}
	c := newClientConn(s, raw)
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	return c
}

// release gives back c's connection slot.
func (s *Server) release(c *clientConn) {
	s.admission.Release(smtpfront.RemoteAddr(c.Conn))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}
