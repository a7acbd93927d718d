package relay

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

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

// connCounter counts open connections, in all and per client address.
type connCounter struct {
	lim     ConnLimits
	trusted func(netip.Addr) bool

	mu    sync.Mutex
	all   int
	perIP map[netip.Addr]int
}

func newConnCounter(l ConnLimits, trusted func(netip.Addr) bool) *connCounter {
	return &connCounter{lim: l, trusted: trusted, perIP: map[netip.Addr]int{}}
}

// take counts a connection from a unless a limit is reached.
func (c *connCounter) take(a netip.Addr) bool {
	per := c.lim.MaxPerIP
	if c.trusted(a) {
		per = c.lim.MaxPerTrustedIP
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.all >= c.lim.MaxConnections || c.perIP[a] >= per {
		return false
	}
	c.all++
	c.perIP[a]++
	return true
}

func (c *connCounter) release(a netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all--
	if c.perIP[a]--; c.perIP[a] <= 0 {
		delete(c.perIP, a)
	}
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
			refuse(c, smtpfront.ReplyLine(smtpfront.ShuttingDown(host)))
			continue
		}
		a := remoteAddr(c)
		if !l.s.conns.take(a) {
			l.s.opts.Log.Warn("too many connections", zap.String("client", c.RemoteAddr().String()))
			refuse(c, smtpfront.ReplyLine(smtpfront.TooManyConnections(host)))
			continue
		}
		return newFrontConn(c, func() { l.s.conns.release(a) }, l.s.trusted(a)), nil
	}
}

// refuse says line and closes. A fresh connection's send buffer is empty,
// so the write does not hold up the accept loop.
func refuse(c net.Conn, line string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c, line)
	c.Close()
}

// remoteAddr is the client's address, IPv4-mapped addresses unmapped.
func remoteAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
