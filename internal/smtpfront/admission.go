package smtpfront

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Admission counts a front's open connections, in all and per client
// address, within its limits. Safe for concurrent use.
type Admission struct {
	max   int
	perIP func(netip.Addr) int

	mu  sync.Mutex
	all int
	ips map[netip.Addr]int
}

// NewAdmission admits at most max connections in all, and perIP(a) from
// address a.
func NewAdmission(max int, perIP func(netip.Addr) int) *Admission {
	return &Admission{max: max, perIP: perIP, ips: map[netip.Addr]int{}}
}

// Take counts a connection from a unless a limit is reached.
func (ad *Admission) Take(a netip.Addr) bool {
	limit := ad.perIP(a)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.all >= ad.max || ad.ips[a] >= limit {
		return false
	}
	ad.all++
	ad.ips[a]++
	return true
}

// Release gives back a connection Take counted.
func (ad *Admission) Release(a netip.Addr) {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	ad.all--
	if ad.ips[a]--; ad.ips[a] <= 0 {
		delete(ad.ips, a)
	}
}

// RemoteAddr is the client's address, IPv4-mapped addresses unmapped:
// the per-address key.
func RemoteAddr(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// Refuse says r and closes c (RFC 5321 §3.8: a server may refuse a
// connection with 421). A fresh connection's send buffer is empty, so
// the write does not hold up the accept loop.
func Refuse(c net.Conn, r *smtp.SMTPError) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c, ReplyLine(r))
	c.Close()
}
