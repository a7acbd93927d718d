package message

import "io"

// CRLFWriter rewrites every bare CR and bare LF to CRLF before writing, so
// that no downstream server can read an end of data, or a line, where the
// MTA saw none (SMTP smuggling; RFC 5321 §2.3.8 allows only CRLF).
type CRLFWriter struct {
	w   io.Writer
	cr  bool // the last byte written was a CR whose LF is pending
	buf []byte
}

// NewCRLFWriter returns a CRLFWriter writing to w.
func NewCRLFWriter(w io.Writer) *CRLFWriter { return &CRLFWriter{w: w} }

// Write normalises p. A CR at the end of p is held until the next byte.
func (c *CRLFWriter) Write(p []byte) (int, error) {
	out := c.buf[:0]
	for _, b := range p {
		switch {
		case c.cr && b == '\n':
			out = append(out, '\r', '\n')
			c.cr = false
		case c.cr:
			out = append(out, '\r', '\n')
			c.cr = b == '\r'
			if !c.cr {
				out = append(out, b)
			}
		case b == '\r':
			c.cr = true
		case b == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, b)
		}
	}
	c.buf = out
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
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
