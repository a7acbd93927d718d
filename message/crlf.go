package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong: a line of the message is longer than the writer's
// LineLimit (RFC 5321 §4.5.3.1.6). Permanent: the same message fails the
// same way every time.
var ErrLineTooLong = errors.New("line too long")

// CRLFWriter rewrites every bare CR and bare LF to CRLF before writing, so
// that no downstream server can read an end of data, or a line, where the
// MTA saw none (SMTP smuggling; RFC 5321 §2.3.8 allows only CRLF).
type CRLFWriter struct {
	// LineLimit is the longest line allowed, CRLF included; 0: no
	// limit. A longer line fails the Write with ErrLineTooLong.
	LineLimit int

	w   io.Writer
	cr  bool // the last byte written was a CR whose LF is pending
	col int  // octets of the current line written so far
	buf []byte
}

// NewCRLFWriter returns a CRLFWriter writing to w.
func NewCRLFWriter(w io.Writer) *CRLFWriter { return &CRLFWriter{w: w} }

// Write normalises p. A CR at the end of p is held until the next byte.
// Runs of text between line ends are copied whole.
func (c *CRLFWriter) Write(p []byte) (int, error) {
	if !c.cr && wellFormed(p) {
		// The usual case: nothing to rewrite, no copy.
		if err := c.measure(p); err != nil {
			return 0, err
		}
		if _, err := c.w.Write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	out := c.buf[:0]
	rest := p
	if c.cr && len(rest) > 0 {
		// The held CR ends a line whatever follows; a following LF is
		// its own.
		out = append(out, '\r', '\n')
		c.cr = false
		if rest[0] == '\n' {
			rest = rest[1:]
		}
	}
	for len(rest) > 0 {
		i := bytes.IndexAny(rest, "\r\n")
		if i < 0 {
			out = append(out, rest...)
			break
		}
		out = append(out, rest[:i]...)
		switch {
		case rest[i] == '\n':
			rest = rest[i+1:]
		case i+1 == len(rest):
			c.cr = true // CR last: its LF may come in the next write
			rest = nil
			continue
		case rest[i+1] == '\n':
			rest = rest[i+2:]
		default:
			rest = rest[i+1:]
		}
		out = append(out, '\r', '\n')
	}
	c.buf = out
	if err := c.measure(out); err != nil {
		return 0, err
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// measure follows the length of the current line through out (CRLF
// text; a held CR is not in it, and comes as the CRLF that starts the
// next out) and fails when it passes LineLimit.
func (c *CRLFWriter) measure(out []byte) error {
	if c.LineLimit <= 0 {
		return nil
	}
	for {
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			c.col += len(out)
			break
		}
		if c.col+i+1 > c.LineLimit {
			return fmt.Errorf("%w: over %d octets", ErrLineTooLong, c.LineLimit)
		}
		c.col, out = 0, out[i+1:]
	}
	// A line not yet ended already too long (its CRLF still to come).
	if c.col+2 > c.LineLimit && c.col > 0 {
		return fmt.Errorf("%w: over %d octets", ErrLineTooLong, c.LineLimit)
	}
	return nil
}

// Close flushes a pending CR as CRLF. It does not close the writer below.
func (c *CRLFWriter) Close() error {
	if c.cr {
		c.cr = false
		_, err := c.w.Write([]byte("\r\n"))
		return err
	}
	return nil
}

// wellFormed reports whether every CR and LF in p is part of a CRLF pair
// and p does not end with a CR.
func wellFormed(p []byte) bool {
	for {
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			return true
		}
		if p[i] == '\n' || i+1 == len(p) || p[i+1] != '\n' {
			return false
		}
		p = p[i+2:]
	}
}
