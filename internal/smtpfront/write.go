package smtpfront

import (
	"bytes"
	"fmt"
	"net"
)

// Write takes go-smtp's replies and sends each when its last line is
// there (RFC 5321 §4.2.1), after the rules: a 354 starts a DATA body, a
// lone 502 to DATA becomes 554 5.5.1 (NoValidRecipients), a 220 to a
// STARTTLS that go-smtp runs makes Conn step aside.
func (c *Conn) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.mode == modeRaw {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.cur.Write(p)
	}
	if len(c.wbuf) == 0 && bytes.IndexByte(p, '\n') == len(p)-1 {
		// go-smtp writes one line at a time: no copy.
		if err := c.line(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	c.wbuf = append(c.wbuf, p...)
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := c.wbuf[:i+1]
		c.wbuf = c.wbuf[i+1:]
		if err := c.line(line); err != nil {
			return 0, err
		}
	}
	if len(c.wbuf) == 0 {
		c.wbuf = nil
	}
	return len(p), nil
}

// line takes one reply line; p is not kept.
func (c *Conn) line(p []byte) error {
	if len(p) >= 4 && p[3] == '-' {
		c.held = append(c.held, bytes.Clone(p)) // more lines follow
		return nil
	}
	lines := append(c.held, p)
	c.held = nil
	return c.send(lines, false)
}

// Say sends a reply of the front's own (one line, no CRLF) after the
// rules.
func (c *Conn) Say(text string) {
	if err := c.send([][]byte{[]byte(text + "\r\n")}, true); err != nil && c.rerr == nil {
		c.rerr = err
	}
}

// send writes one whole reply (own: of the front's, not go-smtp's) after
// the rules.
func (c *Conn) send(lines [][]byte, own bool) error {
	if len(lines) == 1 {
		lines[0] = NoValidRecipients(lines[0])
	}
	code := ReplyCode(lines[len(lines)-1])
	if code == 354 && c.mode == modeCommand {
		c.mode, c.dot = modeData, DotBeginLine
	}
	lines, closing := c.opts.Rules.Reply(c, c.verb, lines)
	err := c.writeLines(lines)
	if code == 220 && c.verb == "STARTTLS" && !own {
		c.mode = modeRaw // go-smtp's handshake reads next
	}
	if closing {
		c.Close()
	}
	return err
}

func (c *Conn) writeLines(lines [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed.Load() {
		return fmt.Errorf("write reply: %w", net.ErrClosed)
	}
	var err error
	if len(lines) == 1 {
		_, err = c.cur.Write(lines[0])
	} else {
		_, err = c.cur.Write(bytes.Join(lines, nil))
	}
	return err
}

// ReplyCode is the three-digit code a reply line starts with, 0 if none.
func ReplyCode(line []byte) int {
	if len(line) < 3 {
		return 0
	}
	n := 0
	for _, b := range line[:3] {
		if b < '0' || b > '9' {
			return 0
		}
		n = n*10 + int(b-'0')
	}
	return n
}
