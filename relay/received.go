package relay

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/caliop/relay/internal/tlsname"
)

// received is the trace header Caliop adds (RFC 5321 §4.4), naming the TLS
// version and cipher of the hop from the MTA and the protocol with the
// RFC 3848 keywords (ESMTPS, LMTPSA, ...). Recipients are not named, so
// that no Bcc leaks.
func (sess *session) received() string {
	proto := "ESMTP"
	if sess.lmtp {
		proto = "LMTP"
	}
	tlsInfo := ""
	if st, ok := sess.conn.TLSConnectionState(); ok {
		proto += "S"
		tlsInfo = fmt.Sprintf("\r\n\t(using %s with cipher %s)", tls.VersionName(st.Version), tlsname.Cipher(st.CipherSuite))
	}
	if sess.user != "" {
		proto += "A"
	}
	helo := sanitize(sess.conn.Hostname())
	return fmt.Sprintf("Received: from %s ([%s])%s\r\n\tby %s (Caliop) with %s id %s;\r\n\t%s\r\n",
		helo, sess.remote, tlsInfo, sess.s.opts.Hostname, proto, sess.id,
		sess.s.opts.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
}

// sanitize keeps a client-supplied name from breaking the header.
func sanitize(s string) string {
	s = strings.Map(func(r rune) rune {
		if r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' {
			return -1
		}
		return r
	}, s)
	if s == "" {
		return "unknown"
	}
	return s
}
