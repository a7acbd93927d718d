package relay

import "github.com/caliop/relay/internal/smtpfront"

// received is the trace header Caliop adds (RFC 5321 §4.4) for the hop
// from the MTA: ESMTP or LMTP, S under TLS, A after AUTH (RFC 3848).
func (sess *session) received() string {
	base := "ESMTP"
	if sess.lmtp {
		base = "LMTP"
	}
	r := smtpfront.Received{Helo: sess.conn.Hostname(), IP: sess.remote, By: sess.s.opts.Hostname, ID: sess.id, Time: sess.s.opts.Now()}
	if st, ok := sess.conn.TLSConnectionState(); ok {
		r.TLS = &st
	}
	r.Proto = smtpfront.Protocol(base, r.TLS != nil, sess.user != "")
	return r.String()
}
