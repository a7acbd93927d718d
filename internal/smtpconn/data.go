package smtpconn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Steps of Data, naming the command a reply answered.
const (
	StepBDAT    = "BDAT"
	StepDATA    = "DATA"        // DATA refused: the body was not sent
	StepDataEnd = "end of DATA" // the reply to the message
)

// Data sends a message of exactly size bytes of CRLF text: as one BDAT
// LAST chunk when the server offers CHUNKING (RFC 3030 §2), one round
// trip instead of DATA's two, else after DATA's 354, dot-stuffed. It
// returns the last reply and the step it answered; a reply other than
// 354 to DATA comes back with StepDATA.
func (c *Conn) Data(body io.Reader, size int64) (*smtp.SMTPError, string, error) {
	if c.Has("CHUNKING") {
		r, err := c.Chunk(body, size)
		return r, StepBDAT, err
	}
	r, err := c.Cmd("DATA")
	if err != nil || r.Code != 354 {
		return r, StepDATA, err
	}
	r, err = c.Body(body)
	return r, StepDataEnd, err
}

// Body sends the message after DATA's 354, dot-stuffed (RFC 5321
// §4.5.2), and reads the reply to it. body is CRLF text.
func (c *Conn) Body(body io.Reader) (*smtp.SMTPError, error) {
	w := c.Text.W
	ds := &dotStuffer{w: w, bol: true}
	if _, err := io.Copy(ds, c.timed(body)); err != nil {
		return nil, err
	}
	if err := ds.close(); err != nil {
		return nil, err
	}
	if _, err := w.WriteString(".\r\n"); err != nil {
		return nil, err
	}
	return c.end()
}

// Chunk sends the message as one last chunk (RFC 3030 §2): no
// dot-stuffing, no 354 to wait for. size must be the exact length of body.
func (c *Conn) Chunk(body io.Reader, size int64) (*smtp.SMTPError, error) {
	c.deadline(c.Timeout)
	if err := c.WriteChunk(body, size); err != nil {
		return nil, err
	}
	return c.end()
}

// WriteChunk buffers the message as one last chunk, "BDAT size LAST"
// and its size bytes, without flushing (a pipelined batch, RFC 3030
// §4.2).
func (c *Conn) WriteChunk(body io.Reader, size int64) error {
	w := c.Text.W
	fmt.Fprintf(w, "BDAT %d LAST\r\n", size)
	n, err := io.Copy(w, c.timed(body))
	if err != nil {
		return err
	}
	if n != size {
		// Never send a chunk of the wrong length: the server would read
		// the rest as commands. Drop the connection instead.
		return fmt.Errorf("body is %d bytes, announced %d", n, size)
	}
	return nil
}

// end flushes the message and reads the reply to it, within
// FinalTimeout.
func (c *Conn) end() (*smtp.SMTPError, error) {
	if err := c.Text.W.Flush(); err != nil {
		return nil, err
	}
	c.deadline(c.FinalTimeout)
	return c.Reply()
}

// timed gives the connection a fresh Timeout for each piece of r
// written, rather than one for the whole message.
func (c *Conn) timed(r io.Reader) io.Reader {
	if c.Timeout <= 0 {
		return r
	}
	return &deadlineReader{r: r, conn: c.Net, timeout: c.Timeout}
}

type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.conn.SetDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
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
