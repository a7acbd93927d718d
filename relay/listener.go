package relay

import (
	"net"

	"github.com/caliop/relay/internal/smtpfront"
	"go.uber.org/zap"
)

// ConnLimits bound the connections the outbound listeners (SMTP and LMTP
// together) take. The defaults never bite a local MTA, which opens tens
// of connections (Postfix default_process_limit is 100). A zero field
// takes its default.
type ConnLimits struct {
	MaxConnections  int // all clients; default 1000
	MaxPerTrustedIP int // per client address in the trusted networks; default 200
	MaxPerIP        int // per other client address (SMTP AUTH users); default 20
}

func (l ConnLimits) withDefaults() ConnLimits {
	orDefault(&l.MaxConnections, 1000)
	orDefault(&l.MaxPerTrustedIP, 200)
	orDefault(&l.MaxPerIP, 20)
	return l
}

// listener admits connections within ConnLimits and none while draining;
// the others are answered 421 (RFC 5321 §3.8: a server may refuse a
// connection with 421) and closed before go-smtp sees them.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := l.s.opts.Hostname
		if l.s.draining.Load() {
			smtpfront.Refuse(c, smtpfront.ShuttingDown(host))
			continue
		}
		a := smtpfront.RemoteAddr(c)
		if !l.s.conns.Take(a) {
			l.s.opts.Log.Warn("too many connections", zap.String("client", c.RemoteAddr().String()))
			smtpfront.Refuse(c, smtpfront.TooManyConnections(host))
			continue
		}
		return newFrontConn(c, func() { l.s.conns.Release(a) }, l.s.trusted(a)), nil
	}
}
