package inbound

import (
	"crypto/tls"
	"net/netip"
	"time"

	"github.com/caliop/relay/internal/smtpfront"
)

// receivedInfo is what the Received header says of the client, taken at
// MAIL.
type receivedInfo struct {
	helo  string
	ip    netip.Addr
	esmtp bool
	tls   *tls.ConnectionState
}

func (sess *session) receivedInfo() receivedInfo {
	ap, _ := netip.ParseAddrPort(sess.c.RemoteAddr().String())
	return receivedInfo{helo: sess.conn.Hostname(), ip: ap.Addr().Unmap(), esmtp: sess.c.esmtp.Load(), tls: sess.c.TLS()}
}

// header is the trace header Caliop adds (RFC 5321 §4.4) for the
// client's hop: SMTP or ESMTP, ESMTPS under TLS (RFC 3848).
func (r receivedInfo) header(host, id string, now time.Time) string {
	base := "SMTP"
	if r.esmtp {
		base = "ESMTP"
	}
	return smtpfront.Received{Helo: r.helo, IP: r.ip, Proto: smtpfront.Protocol(base, r.tls != nil, false), TLS: r.tls, By: host, ID: id, Time: now}.String()
}
