package inbound

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
)

// clientConn sits between a client's TCP connection and go-smtp. It runs
// STARTTLS itself (RFC 3207), so that it sees the plaintext of the whole
// session whatever go-smtp does: it records the greeting verb (for
// XCLIENT PROTO), adds STARTTLS to the EHLO reply, counts error replies
// against Limits.MaxErrors, and closes the connection after any 421
// (RFC 5321 §3.8). go-smtp therefore believes every connection is
// plaintext; TLS facts come from here.
//
// go-smtp reads and writes from the goroutine serving the connection, so
// the read-side fields and the reply assembly need no lock. Shutdown and
// the DATA watchdog also write (hangUp), hence wmu around the socket.
type clientConn struct {
	net.Conn // raw TCP: addresses, deadlines
	s        *Server
	busy     atomic.Bool // inside a transaction: Shutdown lets it finish
	tls      atomic.Pointer[tls.ConnectionState]
	esmtp    atomic.Bool // the last greeting was EHLO, not HELO
	closed   atomic.Bool
	once     sync.Once
	// What has arrived, for the body's pacer: bytes in all and the time
	// of the last read (UnixNano).
	received atomic.Int64
	lastRead atomic.Int64

	// Read side.
	br       *bufio.Reader // reads cur
	rerr     error         // sticky read error
	pending  []byte        // command line handed to go-smtp next
	mode     readMode
	dot      smtpfront.Dot // end-of-data detector in modeData
	bdatLeft int64
	needEHLO bool   // STARTTLS done, no EHLO/HELO since
	verb     string // verb of the last command read

	// Write side.
	wmu    sync.Mutex
	cur    net.Conn // raw, or the *tls.Conn after STARTTLS
	wbuf   []byte   // partial reply line
	held   [][]byte // lines of a multi-line reply, until its last
	errors int      // 4xx and 5xx replies so far
}

type readMode int

const (
	modeCommand readMode = iota // one command line per Read
	modeData                    // DATA body, up to "CRLF.CRLF"
	modeBDAT                    // bdatLeft octets of a BDAT chunk
)

func newClientConn(s *Server, raw net.Conn) *clientConn {
	return &clientConn{Conn: raw, s: s, cur: raw, br: bufio.NewReaderSize(raw, s.bufSize())}
}

// bufSize holds a whole acceptable command line, so a command is always
// seen whole.
func (s *Server) bufSize() int { return max(4096, s.opts.Limits.MaxLine+2) }

func (c *clientConn) isTLS() bool { return c.tls.Load() != nil }

// tlsVersion is the negotiated TLS version, 0 in plaintext.
func (c *clientConn) tlsVersion() uint16 {
	if st := c.tls.Load(); st != nil {
		return st.Version
	}
	return 0
}

// Read hands go-smtp one command line per call in command mode, so that a
// change of mode decided by the reply to that line (354 after DATA) is in
// force before the next is read; in DATA and BDAT modes, bulk bytes up to
// the end of the body or chunk.
func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.read(p)
	if n > 0 {
		c.received.Add(int64(n))
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *clientConn) read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		switch {
		case c.mode == modeData:
			return c.readData(p)
		case c.mode == modeBDAT:
			return c.readChunk(p)
		case c.rerr != nil:
			return 0, c.rerr
		}
		c.readCommand()
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// readCommand reads the next line into pending, or sets rerr. A line
// longer than Limits.MaxLine is read to its end, dropped and answered
// 500 5.5.0; the session goes on.
func (c *clientConn) readCommand() {
	line, err := c.br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || err == nil && len(line) > c.s.opts.Limits.MaxLine:
		for err == bufio.ErrBufferFull {
			_, err = c.br.ReadSlice('\n')
		}
		if err != nil {
			c.rerr = err
			return
		}
		c.reply("500 5.5.0 Line too long")
	case err != nil:
		c.pending, c.rerr = bytes.Clone(line), err
	case c.command(line):
		c.pending = bytes.Clone(line)
	}
}

// command looks at a command line and reports whether go-smtp should see
// it; STARTTLS, and transaction commands before the EHLO that must follow
// STARTTLS, are answered here.
func (c *clientConn) command(line []byte) bool {
	text := strings.TrimRight(string(line), "\r\n")
	c.verb = verbOf(text)
	switch c.verb {
	case "STARTTLS":
		if c.s.opts.TLS == nil {
			return true // go-smtp: 502 TLS not supported
		}
		if c.isTLS() {
			c.reply("502 5.5.1 Already running in TLS")
		} else {
			c.startTLS()
		}
		return false
	case "EHLO", "HELO":
		c.needEHLO = false
		c.esmtp.Store(c.verb == "EHLO")
	case "MAIL", "RCPT", "DATA", "BDAT":
		size := int64(0)
		if c.verb == "BDAT" {
			size = smtpfront.ChunkSize(text[min(5, len(text)):])
		}
		if c.needEHLO {
			// RFC 3207 §4.2: the server forgets the earlier EHLO.
			c.reply("503 5.5.1 EHLO required after STARTTLS")
			if _, err := io.CopyN(io.Discard, c.br, size); err != nil {
				c.rerr = err
			}
			return false
		}
		if size > 0 {
			c.mode, c.bdatLeft = modeBDAT, size
		}
	}
	return true
}

// verbOf is the command verb as go-smtp's parseCmd finds it: STARTTLS by
// prefix, otherwise four letters alone or followed by a space.
func verbOf(line string) string {
	if strings.HasPrefix(strings.ToUpper(line), "STARTTLS") {
		return "STARTTLS"
	}
	if len(line) < 4 || len(line) == 5 || (len(line) > 5 && line[4] != ' ') {
		return ""
	}
	return strings.ToUpper(line[:4])
}

// startTLS answers STARTTLS and runs the handshake. A failed handshake
// ends the connection: the client cannot go on in plaintext.
func (c *clientConn) startTLS() {
	c.reply("220 2.0.0 Ready to start TLS")
	if c.closed.Load() {
		return
	}
	tc := tls.Server(c.Conn, c.s.opts.TLS)
	c.Conn.SetDeadline(time.Now().Add(c.s.opts.Limits.CommandTimeout))
	err := tc.Handshake()
	c.Conn.SetDeadline(time.Time{})
	if err != nil {
		c.s.opts.Log.Info("starttls failed", zap.String("client", c.RemoteAddr().String()), zap.Error(err))
		c.rerr = err
		c.Close()
		return
	}
	st := tc.ConnectionState()
	c.tls.Store(&st)
	c.wmu.Lock()
	c.cur = tc
	c.wmu.Unlock()
	// RFC 3207 §4.2: whatever was pipelined after STARTTLS is dropped.
	c.br = bufio.NewReaderSize(tc, c.s.bufSize())
	c.needEHLO = true
}

// Close closes the connection once and gives back its slot. Under TLS it
// sends close_notify first (RFC 8446 §6.1), so that the client sees a
// clean end of the session, not a truncation.
func (c *clientConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		c.closed.Store(true)
		c.wmu.Lock()
		cur := c.cur
		c.wmu.Unlock()
		if tc, ok := cur.(*tls.Conn); ok {
			c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			err = tc.Close()
		} else {
			err = c.Conn.Close()
		}
		c.s.release(c)
	})
	return err
}

// hangUp says r (a reply that ends the session) and closes the
// connection, from any goroutine.
func (c *clientConn) hangUp(r *smtp.SMTPError) {
	c.wmu.Lock()
	if !c.closed.Load() {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.cur, smtpfront.ReplyLine(r))
	}
	c.wmu.Unlock()
	c.Close()
}
