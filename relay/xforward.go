package relay

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/caliop/relay/internal/smtpfront"
)

// XFORWARD (Postfix XFORWARD_README): an MTA that relays through Caliop
// tells it the original client and its own queue id, so that Caliop's
// log lines join the MTA's. go-smtp knows no XFORWARD, so frontConn, which
// sits between the connection and go-smtp, answers it: it adds the
// keyword to the EHLO/LHLO reply and takes XFORWARD commands itself,
// for trusted clients only, on the plaintext leg (after STARTTLS it
// steps aside; the MTA's LMTP or SMTP to Caliop is loopback plaintext).

// xforwardKeyword is the EHLO line offered.
const xforwardKeyword = "XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT"

// Forwarded is what the MTA said of a transaction with XFORWARD.
type Forwarded struct {
	Name, Addr, Proto, Helo string // the original client
	Ident                   string // the MTA's queue id
}

// readMode is what the client sends next, as go-smtp will read it.
type readMode int

const (
	modeCommand readMode = iota // one command line per Read
	modeData                    // a DATA body, up to CRLF.CRLF
	modeBDAT                    // bdatLeft octets of a BDAT chunk
	modeRaw                     // after STARTTLS: everything as it comes
)

// frontConn is a client connection as go-smtp sees it: it holds its
// connection slot (ConnLimits) and speaks XFORWARD.
type frontConn struct {
	net.Conn
	once    sync.Once
	release func()
	offer   bool // trusted client: XFORWARD offered and taken

	br       *bufio.Reader
	pending  []byte
	rerr     error
	mode     readMode
	dot      smtpfront.Dot
	bdatLeft int64
	ehlo     bool     // the next reply answers EHLO/LHLO
	held     [][]byte // EHLO reply lines until the last
	wbuf     []byte

	wmu sync.Mutex // the socket's write side: Write and XFORWARD's reply

	mu  sync.Mutex
	fwd Forwarded
}

func newFrontConn(c net.Conn, release func(), offer bool) *frontConn {
	return &frontConn{Conn: c, release: release, offer: offer, br: bufio.NewReaderSize(c, 64<<10)}
}

// Close gives the connection slot back (once) and closes.
func (c *frontConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// Forwarded returns what XFORWARD said for the current transaction.
func (c *frontConn) Forwarded() Forwarded {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fwd
}

// Read hands go-smtp one command line per call, or body bytes up to the
// end of the body or chunk, so that each change of mode is in force
// before the next byte is read.
func (c *frontConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		switch {
		case c.mode == modeRaw:
			return c.br.Read(p)
		case c.mode == modeBDAT:
			n, err := c.br.Read(p[:min(int64(len(p)), c.bdatLeft)])
			if c.bdatLeft -= int64(n); c.bdatLeft == 0 {
				c.mode = modeCommand
			}
			return n, err
		case c.mode == modeData:
			return c.readData(p)
		case c.rerr != nil:
			return 0, c.rerr
		}
		c.readCommand()
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// readData passes body bytes, never past the end of the body.
func (c *frontConn) readData(p []byte) (int, error) {
	n, ended, err := smtpfront.ReadBody(c.br, p, &c.dot)
	if ended {
		c.mode = modeCommand
	}
	return n, err
}

// readCommand reads the next command line into pending, taking XFORWARD
// itself. pending is a slice of the reader's buffer, which is not read
// again before go-smtp has taken all of it.
func (c *frontConn) readCommand() {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		c.pending, c.rerr = line, err
		if err == bufio.ErrBufferFull {
			c.rerr = nil // go-smtp refuses the over-long line
		}
		return
	}
	verb, args, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	switch {
	case bytes.EqualFold(verb, []byte("XFORWARD")):
		if c.offer {
			c.xforward(string(args))
			return
		}
	case bytes.EqualFold(verb, []byte("EHLO")), bytes.EqualFold(verb, []byte("LHLO")):
		c.ehlo, c.held = true, nil
	case bytes.EqualFold(verb, []byte("STARTTLS")):
		c.mode = modeRaw
	case bytes.EqualFold(verb, []byte("BDAT")):
		if n := smtpfront.ChunkSize(string(args)); n > 0 {
			c.mode, c.bdatLeft = modeBDAT, n
		}
	}
	c.pending = line
}

// xforward records the attributes (xtext, RFC 3461 §4) and answers 250.
// "[UNAVAILABLE]" and "[TEMPUNAVAIL]" leave an attribute empty.
func (c *frontConn) xforward(args string) {
	c.mu.Lock()
	for _, kv := range strings.Fields(args) {
		k, v, _ := strings.Cut(kv, "=")
		v = unxtext(v)
		if v == "[UNAVAILABLE]" || v == "[TEMPUNAVAIL]" {
			v = ""
		}
		switch strings.ToUpper(k) {
		case "NAME":
			c.fwd.Name = v
		case "ADDR":
			c.fwd.Addr = v
		case "PROTO":
			c.fwd.Proto = v
		case "HELO":
			c.fwd.Helo = v
		case "IDENT":
			c.fwd.Ident = v
		}
	}
	c.mu.Unlock()
	c.wmu.Lock()
	io.WriteString(c.Conn, "250 2.0.0 Ok\r\n")
	c.wmu.Unlock()
}

// resetForwarded forgets the attributes at the end of a transaction.
func (c *frontConn) resetForwarded() {
	c.mu.Lock()
	c.fwd = Forwarded{}
	c.mu.Unlock()
}

// unxtext decodes xtext; "+XX" is a byte, anything else as it is, and the
// result is kept to printable ASCII for the log.
func unxtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '+' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				c, i = byte(v), i+2
			}
		}
		if c >= ' ' && c < 0x7f {
			b.WriteByte(c)
		}
		if b.Len() >= 255 {
			break
		}
	}
	return b.String()
}

// Write passes go-smtp's replies on, adding XFORWARD to the EHLO reply
// and noting the 354 that starts a DATA body.
func (c *frontConn) Write(p []byte) (int, error) {
	if c.mode == modeRaw || !c.ehlo && len(c.wbuf) == 0 && bytes.HasSuffix(p, []byte("\n")) {
		// Whole reply lines, no EHLO reply to rewrite (go-smtp writes
		// each reply at once): only a 354 matters, at a line start.
		if c.mode == modeCommand && startsLine(p, "354") {
			c.mode, c.dot = modeData, smtpfront.DotBeginLine
		}
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.mode != modeRaw {
			if out := smtpfront.NoValidRecipients(p); len(out) != len(p) {
				_, err := c.Conn.Write(out)
				return len(p), err
			}
		}
		return c.Conn.Write(p)
	}
	c.wbuf = append(c.wbuf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := bytes.Clone(c.wbuf[:i+1])
		c.wbuf = c.wbuf[i+1:]
		out = append(out, c.replyLine(line)...)
	}
	if len(out) > 0 {
		c.wmu.Lock()
		_, err := c.Conn.Write(out)
		c.wmu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// startsLine reports whether a line of p starts with prefix.
func startsLine(p []byte, prefix string) bool {
	for len(p) > 0 {
		if bytes.HasPrefix(p, []byte(prefix)) {
			return true
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return false
		}
		p = p[i+1:]
	}
	return false
}

// replyLine returns what to send for one reply line of go-smtp's.
func (c *frontConn) replyLine(line []byte) []byte {
	line = smtpfront.NoValidRecipients(line)
	if !c.ehlo {
		if c.mode == modeCommand && bytes.HasPrefix(line, []byte("354")) {
			c.mode, c.dot = modeData, smtpfront.DotBeginLine
		}
		return line
	}
	c.held = append(c.held, line)
	if len(line) >= 4 && line[3] == '-' {
		return nil
	}
	c.ehlo = false
	lines := c.held
	c.held = nil
	if !c.offer || !bytes.HasPrefix(lines[0], []byte("250")) {
		return bytes.Join(lines, nil)
	}
	// "250-...": the keyword goes before the last line.
	last := lines[len(lines)-1]
	out := bytes.Join(lines[:len(lines)-1], nil)
	if len(lines) == 1 {
		out = append([]byte("250-"), last[4:]...)
	} else {
		out = append(out, last[:3]...)
		out = append(out, '-')
		out = append(out, last[4:]...)
	}
	return append(out, "250 "+xforwardKeyword+"\r\n"...)
}
