package inbound

import (
	"bytes"
	"net"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
)

// clientConn is a client connection and the inbound rules of its
// smtpfront.Conn. The Conn runs STARTTLS itself (RFC 3207), so that it
// sees the plaintext of the whole session whatever go-smtp does: the
// rules record the greeting verb (for XCLIENT PROTO), add STARTTLS to the
// EHLO reply, count error replies against Limits.MaxErrors, and close
// the connection after any 421 (RFC 5321 §3.8). go-smtp therefore
// believes every connection is plaintext; TLS facts come from here.
// The rules run in the goroutine serving the connection.
type clientConn struct {
	*smtpfront.Conn
	s        *Server
	esmtp    atomic.Bool // the last greeting was EHLO, not HELO
	needEHLO bool        // STARTTLS done, no EHLO/HELO since
	errors   int         // 4xx and 5xx replies so far
}

// wrap is the smtpfront.Conn of an admitted connection.
func (s *Server) wrap(raw net.Conn, release func()) *smtpfront.Conn {
	c := &clientConn{s: s}
	l := s.opts.Limits
	c.Conn = smtpfront.NewConn(raw, smtpfront.ConnOptions{
		Rules:   c,
		BufSize: s.bufSize(),
		MaxLine: l.MaxLine,
		// The pacer's watchdog, at half of it, acts first.
		BodyTimeout: 2 * l.CommandTimeout,
	}, release)
	return c.Conn
}

// bufSize holds a whole acceptable command line, so a command is always
// seen whole.
func (s *Server) bufSize() int { return max(4096, s.opts.Limits.MaxLine+2) }

func (c *clientConn) isTLS() bool { return c.TLS() != nil }

// tlsVersion is the negotiated TLS version, 0 in plaintext.
func (c *clientConn) tlsVersion() uint16 {
	if st := c.TLS(); st != nil {
		return st.Version
	}
	return 0
}

// Command answers STARTTLS, and transaction commands before the EHLO
// that must follow STARTTLS (RFC 3207 §4.2: the server forgets the
// earlier EHLO).
func (c *clientConn) Command(fc *smtpfront.Conn, verb string, line []byte) bool {
	switch verb {
	case "STARTTLS":
		if c.s.opts.TLS == nil {
			return true // go-smtp: 502 TLS not supported
		}
		if c.isTLS() {
			fc.Say("502 5.5.1 Already running in TLS")
		} else {
			c.startTLS()
		}
		return false
	case "EHLO", "HELO":
		c.needEHLO = false
		c.esmtp.Store(verb == "EHLO")
	case "MAIL", "RCPT", "DATA", "BDAT":
		if c.needEHLO {
			fc.Say("503 5.5.1 EHLO required after STARTTLS")
			if verb == "BDAT" {
				fc.Skip(smtpfront.ChunkSize(string(line[min(5, len(line)):])))
			}
			return false
		}
	}
	return true
}

// startTLS answers STARTTLS and runs the handshake. A failed handshake
// ends the connection: the client cannot go on in plaintext.
func (c *clientConn) startTLS() {
	c.Say("220 2.0.0 Ready to start TLS")
	if err := c.StartTLS(c.s.opts.TLS, c.s.opts.Limits.CommandTimeout); err != nil {
		c.s.opts.Log.Info("starttls failed", zap.String("client", c.RemoteAddr().String()), zap.Error(err))
		return
	}
	c.needEHLO = true
}

// Reply adds STARTTLS to the EHLO reply, turns go-smtp's own limit on bad
// commands into our 421, and counts errors: after Limits.MaxErrors, 421
// and the connection closes, as after any 421.
func (c *clientConn) Reply(_ *smtpfront.Conn, verb string, lines [][]byte) ([][]byte, bool) {
	last := lines[len(lines)-1]
	code := smtpfront.ReplyCode(last)
	host := c.s.opts.Hostname
	switch {
	case code == 250 && verb == "EHLO" && len(lines) > 1:
		lines = c.ehloReply(lines)
	case code == 500 && bytes.Contains(last, []byte("Too many errors")):
		// go-smtp's own limit on bad commands: closing is a 421
		// (RFC 5321 §3.8), the same as ours.
		lines, code = [][]byte{[]byte(smtpfront.ReplyLine(errTooManyErrors(host)))}, 421
	}
	closing := code == 421
	if code >= 400 && code < 600 && !closing {
		if c.errors++; c.errors >= c.s.opts.Limits.MaxErrors {
			lines = append(lines, []byte(smtpfront.ReplyLine(errTooManyErrors(host))))
			closing = true
		}
	}
	return lines, closing
}

// ehloReply adds STARTTLS to go-smtp's EHLO reply (RFC 3207 §4), unless
// the session is TLS already or has no certificate, keeping "250 " on the
// last line only.
func (c *clientConn) ehloReply(lines [][]byte) [][]byte {
	if c.s.opts.TLS == nil || c.isTLS() {
		return lines
	}
	out := make([][]byte, 0, len(lines)+1)
	out = append(out, lines[0], []byte("250-STARTTLS\r\n"))
	return append(out, lines[1:]...)
}
