package inbound

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/caliop/relay/internal/tlsname"
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
	return receivedInfo{helo: sess.conn.Hostname(), ip: ap.Addr().Unmap(), esmtp: sess.c.esmtp.Load(), tls: sess.c.tls.Load()}
}

// header is the trace header Caliop adds (RFC 5321 §4.4), naming the TLS
// version and cipher of the client's hop, as Postfix does, and the
// protocol with the RFC 3848 keywords (ESMTP, ESMTPS). Recipients are not
// named, so that no Bcc leaks.
func (r receivedInfo) header(host, id string, now time.Time) string {
	proto := "SMTP"
	if r.esmtp {
		proto = "ESMTP"
	}
	tlsInfo := ""
	if r.tls != nil {
		proto = "ESMTPS" // RFC 3848 §2: STARTTLS implies EHLO
		tlsInfo = fmt.Sprintf("\r\n\t(using %s with cipher %s)", tlsVersion(r.tls.Version), tlsname.Cipher(r.tls.CipherSuite))
	}
	return fmt.Sprintf("Received: from %s ([%s])%s\r\n\tby %s (Caliop) with %s id %s;\r\n\t%s\r\n",
		sanitize(r.helo), r.ip, tlsInfo, host, proto, id, now.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// tlsVersion names a TLS version as Postfix's Received header does
// ("TLSv1.3").
func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}

// sanitize keeps a client-supplied name from breaking the header.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' || r == '[' || r == ']' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "unknown"
	}
	return s
}
