// Package smtpconn is the client side of an SMTP connection (RFC 5321),
// shared by the delivery to MX hosts and the inbound side's next hop:
// replies, commands with per-command deadlines, EHLO and its keywords,
// MAIL parameters, and the message sent by BDAT or DATA. What each user
// adds stays with it: pipelining, pooling and the TLS plan in delivery,
// XCLIENT and keep-alives in inbound.
package smtpconn

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// bufSize is the size of a connection's read and write buffers: a 16 KiB
// TLS record's worth, so a typical message goes out in one write.
const bufSize = 16 << 10

// Conn is one SMTP client connection.
type Conn struct {
	Net  net.Conn
	Text *textproto.Conn
	// Ext holds the keywords of the last EHLO reply, upper case, with
	// their parameters.
	Ext map[string]string
	// Timeout bounds each command and each piece of a message written;
	// FinalTimeout bounds the wait for the reply to the end of a message
	// (RFC 5321 §4.5.3.2.6). Zero: Conn sets no deadline, the caller
	// does.
	Timeout, FinalTimeout time.Duration
}

// New wraps conn, on which nothing was read yet.
func New(conn net.Conn) *Conn {
	return &Conn{Net: conn, Text: newText(conn)}
}

// readers and writers hold the buffers of idle connections (Release),
// so that a pool of idle connections costs no 32 KiB each.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
)

func newText(conn net.Conn) *textproto.Conn {
	r := readers.Get().(*bufio.Reader)
	r.Reset(conn)
	w := writers.Get().(*bufio.Writer)
	w.Reset(conn)
	return &textproto.Conn{Reader: *textproto.NewReader(r), Writer: *textproto.NewWriter(w)}
}

// Release gives the buffers back while the connection is idle; Resume
// takes buffers again before the next command. A connection with
// unread replies or unsent bytes keeps its own.
func (c *Conn) Release() {
	if c.Text == nil || c.Text.R.Buffered() > 0 || c.Text.W.Buffered() > 0 {
		return
	}
	c.Text.R.Reset(nil)
	c.Text.W.Reset(nil)
	readers.Put(c.Text.R)
	writers.Put(c.Text.W)
	c.Text = nil
}

// Resume undoes Release.
func (c *Conn) Resume() {
	if c.Text == nil {
		c.Text = newText(c.Net)
	}
}

// Reply reads one (possibly multi-line) reply.
func (c *Conn) Reply() (*smtp.SMTPError, error) {
	code, msg, err := c.Text.ReadResponse(0)
	if err != nil {
		if _, ok := err.(textproto.ProtocolError); ok {
			return nil, fmt.Errorf("malformed reply: %w", err)
		}
		return nil, err
	}
	return Parse(code, msg), nil
}

// Cmd sends one command and reads its reply, within Timeout.
func (c *Conn) Cmd(format string, args ...any) (*smtp.SMTPError, error) {
	c.deadline(c.Timeout)
	if err := c.Text.PrintfLine(format, args...); err != nil {
		return nil, err
	}
	return c.Reply()
}

// Ehlo says EHLO and, on 250, records the keywords (RFC 5321 §4.1.1.1).
// Another reply is returned as is, with Ext unchanged.
func (c *Conn) Ehlo(name string) (*smtp.SMTPError, error) {
	c.deadline(c.Timeout)
	if err := c.Text.PrintfLine("EHLO %s", name); err != nil {
		return nil, err
	}
	code, msg, err := c.Text.ReadResponse(0)
	if err != nil {
		return nil, err
	}
	if code == 250 {
		c.Ext = map[string]string{}
		for _, l := range strings.Split(msg, "\n")[1:] {
			k, v, _ := strings.Cut(l, " ")
			c.Ext[strings.ToUpper(k)] = v
		}
	}
	return Parse(code, msg), nil
}

// Has reports whether the server announced an EHLO keyword.
func (c *Conn) Has(keyword string) bool {
	_, ok := c.Ext[keyword]
	return ok
}

// MaxSize is the server's SIZE limit (RFC 1870), 0 when none was given.
func (c *Conn) MaxSize() int64 {
	n, _ := strconv.ParseInt(c.Ext["SIZE"], 10, 64)
	return n
}

// StartTLS runs the TLS handshake on the connection after the server's
// 220 to STARTTLS and forgets the keywords learnt before (RFC 3207 §4.2:
// the caller says EHLO again).
func (c *Conn) StartTLS(cfg *tls.Config) (tls.ConnectionState, error) {
	tc := tls.Client(c.Net, cfg)
	if err := tc.Handshake(); err != nil {
		return tls.ConnectionState{}, err
	}
	c.Net, c.Text, c.Ext = tc, newText(tc), nil
	return tc.ConnectionState(), nil
}

// Quit says QUIT without waiting long for the reply, and closes.
func (c *Conn) Quit() {
	c.Resume()
	c.Net.SetDeadline(time.Now().Add(time.Second))
	c.Text.PrintfLine("QUIT")
	c.Net.Close()
}

// deadline gives the connection d from now, when d is set.
func (c *Conn) deadline(d time.Duration) {
	if d > 0 {
		c.Net.SetDeadline(time.Now().Add(d))
	}
}
