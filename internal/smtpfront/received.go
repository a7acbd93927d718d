package smtpfront

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/caliop/relay/internal/tlsname"
)

// Received is the trace header field a front adds (RFC 5321 §4.4). It
// names the TLS version and cipher of the client's hop as Postfix does,
// and the protocol with the RFC 3848 keywords; never the recipients, so
// that no Bcc leaks.
type Received struct {
	Helo  string               // the client's EHLO or HELO name, as it gave it
	IP    netip.Addr           // the client's address
	Proto string               // SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP, LMTPS, ...
	TLS   *tls.ConnectionState // nil in plaintext
	By    string               // Caliop's host name
	ID    string               // the transaction id
	Time  time.Time
}

// String is the field, folded, CRLF included.
func (r Received) String() string {
	tlsInfo := ""
	if r.TLS != nil {
		tlsInfo = fmt.Sprintf("\r\n\t(using %s with cipher %s)", TLSVersion(r.TLS.Version), tlsname.Cipher(r.TLS.CipherSuite))
	}
	return fmt.Sprintf("Received: from %s ([%s])%s\r\n\tby %s (Caliop) with %s id %s;\r\n\t%s\r\n",
		sanitize(r.Helo), r.IP, tlsInfo, r.By, r.Proto, r.ID, r.Time.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// Protocol is the RFC 3848 with-keyword: base ("SMTP", "ESMTP" or
// "LMTP"), then S for TLS, A for an authenticated client. STARTTLS
// implies EHLO (RFC 3848 §2), so "SMTP" with TLS is ESMTPS.
func Protocol(base string, tls, auth bool) string {
	if base == "SMTP" && (tls || auth) {
		base = "ESMTP"
	}
	if tls {
		base += "S"
	}
	if auth {
		base += "A"
	}
	return base
}

// TLSVersion names a TLS version as Postfix's Received header does
// ("TLSv1.3").
func TLSVersion(v uint16) string {
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

// sanitize keeps a client-supplied name from breaking the header: no
// white space, control or non-ASCII character, and none of the
// characters that delimit its comments and address ("(", ")", ";", "[",
// "]").
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune("();[]", r) {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "unknown"
	}
	return s
}
