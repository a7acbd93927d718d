package inbound

import (
	"time"

	"github.com/caliop/relay/internal/smtpfront"
)

// bodyDeadline gives each read of a body a deadline of its own, instead
// of go-smtp's one for the whole body; the pacer's watchdog, at half of
// it, acts first.
func (c *clientConn) bodyDeadline() {
	if c.br.Buffered() == 0 {
		c.Conn.SetReadDeadline(time.Now().Add(2 * c.s.opts.Limits.CommandTimeout))
	}
}

// readChunk reads the rest of a BDAT chunk.
func (c *clientConn) readChunk(p []byte) (int, error) {
	c.bodyDeadline()
	n, err := c.br.Read(p[:min(int64(len(p)), c.bdatLeft)])
	c.bdatLeft -= int64(n)
	if c.bdatLeft == 0 {
		c.mode = modeCommand
	}
	return n, err
}

// readData reads what is buffered of the body, never past its end
// (RFC 5321 §4.5.2), so that the next command is again read alone.
func (c *clientConn) readData(p []byte) (int, error) {
	c.bodyDeadline()
	n, ended, err := smtpfront.ReadBody(c.br, p, &c.dot)
	if ended {
		c.mode = modeCommand
	}
	return n, err
}
