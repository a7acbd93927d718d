package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"

	"github.com/emersion/go-smtp"
)

// bufSize is the size of a connection's read and write buffers: a 16 KiB
// TLS record's worth, so a typical message goes out in one write.
const bufSize = 16 << 10

// newText wraps conn for line-oriented SMTP with large buffers.
func newText(conn net.Conn) *textproto.Conn {
	return &textproto.Conn{
		Reader: *textproto.NewReader(bufio.NewReaderSize(conn, bufSize)),
		Writer: *textproto.NewWriter(bufio.NewWriterSize(conn, bufSize)),
	}
}

// body sends the message after DATA's 354, dot-stuffed (RFC 5321 §4.5.2),
// and reads the final reply. The body is already CRLF-normalised.
func (c *client) body(r io.Reader) (*smtp.SMTPError, error) {
	w := c.text.W
	ds := &dotStuffer{w: w, bol: true}
	if _, err := io.Copy(ds, r); err != nil {
		return nil, err
	}
	if err := ds.close(); err != nil {
		return nil, err
	}
	if _, err := w.WriteString(".\r\n"); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	c.sent++
	return c.endReply()
}

// bdat sends the body as one last chunk (RFC 3030 §2): no dot-stuffing, no
// 354 to wait for. size must be the exact length of r.
func (c *client) bdat(r io.Reader, size int64) (*smtp.SMTPError, error) {
	w := c.text.W
	fmt.Fprintf(w, "BDAT %d LAST\r\n", size)
	n, err := io.Copy(w, r)
	if err != nil {
		return nil, err
	}
	if n != size {
		// Never send a chunk of the wrong length: the server would read
		// the next command as data. Drop the connection instead.
		return nil, fmt.Errorf("body is %d bytes, announced %d", n, size)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	c.sent++
	return c.endReply()
}

// dotStuffer doubles a '.' at the start of each line (RFC 5321 §4.5.2) and
// ends the last line with CRLF when the body does not. Input is CRLF text.
type dotStuffer struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // the last byte written was CR
}

func (d *dotStuffer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return n - len(p), err
			}
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		if _, err := d.w.Write(chunk); err != nil {
			return n - len(p), err
		}
		d.bol = i >= 0
		d.cr = chunk[len(chunk)-1] == '\r'
		p = p[len(chunk):]
	}
	return n, nil
}

// close ends an unterminated last line, so the terminator is "CRLF.CRLF".
func (d *dotStuffer) close() error {
	if d.bol {
		return nil
	}
	if d.cr {
		return d.w.WriteByte('\n')
	}
	_, err := d.w.WriteString("\r\n")
	return err
}

// endReply reads the reply to the end of the message, which ends the
// transaction whatever it says (RFC 5321 §4.1.1.4; RFC 3030 §2 for BDAT
// LAST).
func (c *client) endReply() (*smtp.SMTPError, error) {
	reply, err := c.reply()
	if err == nil {
		c.dirty = false
	}
	return reply, err
}
