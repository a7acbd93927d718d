// Package smtpfront holds what Caliop's two SMTP fronts (relay, the
// outbound listeners, and inbound, port 25) share below go-smtp: the
// connection wrapper (Conn), which sees the session as go-smtp does and
// applies each front's Rules; the connections' admission, tracking and
// drain at shutdown (Front); the replies both give (421, local errors);
// Received header fields, ids and the zap adapter. Conn finds the end of
// a DATA body or a BDAT chunk exactly where go-smtp does, so that it
// never disagrees with go-smtp about where the next command starts.
package smtpfront

import (
	"bufio"
	"bytes"
)

// Dot follows a DATA body byte by byte to its end ("CRLF.CRLF", RFC 5321
// §4.5.2), as go-smtp's data reader does.
type Dot int

const (
	DotBeginLine Dot = iota // at the start of a line (after CRLF)
	dotDot                  // "." at the start of a line
	dotDotCR                // ".\r" at the start of a line
	dotCR                   // "\r"
	DotData                 // inside a line
	DotEnd                  // ".\r\n" at the start of a line: the body ended
)

// Next is the state after b.
func (s Dot) Next(b byte) Dot {
	switch {
	case s == DotBeginLine && b == '.':
		return dotDot
	case s == dotDot && b == '\r':
		return dotDotCR
	case s == dotDotCR && b == '\n':
		return DotEnd
	case s == dotCR && b == '\n':
		return DotBeginLine
	case (s == DotBeginLine || s == DotData) && b == '\r':
		return dotCR
	}
	return DotData
}

// ReadBody copies to p the body bytes br holds (waiting for one if none),
// never past the end of the body, advancing *d; ended reports that the
// body's last byte was copied (*d is then DotBeginLine again for the next
// body). A connection wrapper reads DATA through it, so that the next
// command is again read alone.
func ReadBody(br *bufio.Reader, p []byte, d *Dot) (n int, ended bool, err error) {
	if br.Buffered() == 0 {
		if _, err := br.Peek(1); err != nil {
			return 0, false, err
		}
	}
	buf, _ := br.Peek(min(len(p), br.Buffered()))
	for n < len(buf) {
		if *d == DotData {
			// Inside a line only a CR matters: skip to it.
			i := bytes.IndexByte(buf[n:], '\r')
			if i < 0 {
				n = len(buf)
				break
			}
			n += i
		}
		*d = d.Next(buf[n])
		n++
		if *d == DotEnd {
			*d, ended = DotBeginLine, true
			break
		}
	}
	copy(p, buf[:n])
	br.Discard(n)
	return n, ended, nil
}
