package inbound

import (
	"bytes"
	"fmt"
	"net"
	"strconv"

	"github.com/caliop/relay/internal/smtpfront"
)

// Write takes go-smtp's replies and sends each when its last line is
// there, after the session rules: STARTTLS added to the EHLO reply, DATA
// mode on 354, errors counted, the connection closed after a 421.
func (c *clientConn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := bytes.Clone(c.wbuf[:i+1])
		c.wbuf = c.wbuf[i+1:]
		c.held = append(c.held, line)
		if len(line) >= 4 && line[3] == '-' {
			continue // RFC 5321 §4.2.1: more lines follow
		}
		reply := c.held
		c.held = nil
		if err := c.send(reply); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// reply sends a reply of the connection's own.
func (c *clientConn) reply(text string) {
	if err := c.send([][]byte{[]byte(text + "\r\n")}); err != nil && c.rerr == nil {
		c.rerr = err
	}
}

// send writes one whole reply after the session rules.
func (c *clientConn) send(lines [][]byte) error {
	if len(lines) == 1 {
		lines[0] = smtpfront.NoValidRecipients(lines[0])
	}
	last := lines[len(lines)-1]
	code, _ := strconv.Atoi(string(last[:min(3, len(last))]))
	host := c.s.opts.Hostname
	switch {
	case code == 250 && c.verb == "EHLO" && len(lines) > 1:
		lines = c.ehloReply(lines)
	case code == 354:
		c.mode, c.dot = modeData, smtpfront.DotBeginLine
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
	err := c.writeLines(lines)
	if closing {
		c.Close()
	}
	return err
}

func (c *clientConn) writeLines(lines [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("write reply: %w", net.ErrClosed)
	}
	_, err := c.cur.Write(bytes.Join(lines, nil))
	return err
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
