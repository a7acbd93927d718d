// Package smtpfront holds what Caliop's two SMTP fronts (relay, the
// outbound listeners, and inbound, port 25) share below go-smtp: finding
// the end of a DATA body exactly where go-smtp finds it, so that a
// connection wrapper that reads commands itself never disagrees with
// go-smtp about where the next command starts.
package smtpfront

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
