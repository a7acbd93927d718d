package smtpfront

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// Conn sits between a client's connection and go-smtp, so that a front
// sees the session as go-smtp does and can add its own rules (Rules):
// it hands go-smtp one command line per Read, so that a change of mode
// decided by the reply to that line (354 after DATA, a BDAT chunk) is in
// force before the next byte is read, and body bytes up to the end of
// the body or chunk. It assembles go-smtp's replies line by line and
// sends each whole, after the rules.
//
// go-smtp reads and writes from the goroutine serving the connection, so
// the read side and the reply assembly need no lock; a drain or a
// watchdog also writes (HangUp), hence wmu around the socket.
type Conn struct {
	net.Conn // raw TCP: addresses, deadlines
	opts     ConnOptions
	release  func()
	// Busy: inside a transaction, which a drain lets finish (Front).
	busy   atomic.Bool
	closed atomic.Bool
	once   sync.Once
	tls    atomic.Pointer[tls.ConnectionState] // when Conn ran STARTTLS
	// What has arrived, for a body pacer: bytes in all and the time of
	// the last read (UnixNano).
	received atomic.Int64
	lastRead atomic.Int64
	outer    atomic.Pointer[func() net.Conn]

	// Read side.
	br       *bufio.Reader // reads cur
	rerr     error         // sticky read error
	pending  []byte        // command line handed to go-smtp next
	mode     readMode
	dot      Dot // end-of-data detector in modeData
	bdatLeft int64
	verb     string // verb of the last command read
	// midLine: the last command line handed over was the start of a
	// line longer than the buffer; its rest is not a command.
	midLine bool

	// Write side.
	wmu  sync.Mutex
	cur  net.Conn // raw, or the *tls.Conn after StartTLS
	wbuf []byte   // partial reply line
	held [][]byte // lines of a multi-line reply, until its last
}

// ConnOptions set a Conn's rules and limits.
type ConnOptions struct {
	Rules Rules
	// BufSize is the read buffer, which holds a whole acceptable command
	// line; at least 4096.
	BufSize int
	// MaxLine: a longer command line (CRLF included) is read to its end,
	// dropped and answered "500 5.5.0 Line too long"; the session goes
	// on. 0: the line goes to go-smtp, whose MaxLineLength applies.
	MaxLine int
	// BodyTimeout is the read deadline of each piece of a body, instead
	// of go-smtp's one for the whole body; 0: go-smtp's.
	BodyTimeout time.Duration
}

// Rules are what a front adds to go-smtp's session.
type Rules interface {
	// Command sees each command line (CRLF included) and its verb (see
	// Verb) before go-smtp does; false: the rules answered it (Say) and
	// go-smtp does not see it.
	Command(c *Conn, verb string, line []byte) bool
	// Reply sees each whole reply, go-smtp's or Say's, to a command of
	// verb; it returns the lines to send and whether to close the
	// connection after them.
	Reply(c *Conn, verb string, lines [][]byte) ([][]byte, bool)
}

// readMode is what the client sends next, as go-smtp will read it.
type readMode int

const (
	modeCommand readMode = iota // one command line per Read
	modeData                    // DATA body, up to "CRLF.CRLF"
	modeBDAT                    // bdatLeft octets of a BDAT chunk
	modeRaw                     // go-smtp runs TLS: everything as it comes
)

// NewConn wraps raw; release (may be nil) is called once when it closes.
func NewConn(raw net.Conn, o ConnOptions, release func()) *Conn {
	o.BufSize = max(o.BufSize, 4096)
	return &Conn{Conn: raw, opts: o, release: release, cur: raw, br: bufio.NewReaderSize(raw, o.BufSize)}
}

// Of is the Conn under nc, which go-smtp may have wrapped in TLS; nil
// when there is none.
func Of(nc net.Conn) *Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, _ := nc.(*Conn)
	return c
}

// Rules are the rules c was made with.
func (c *Conn) Rules() Rules { return c.opts.Rules }

// TLS is the state of the TLS Conn ran itself (StartTLS), nil otherwise.
func (c *Conn) TLS() *tls.ConnectionState { return c.tls.Load() }

// Received is the number of bytes read so far; LastRead the time of the
// last read.
func (c *Conn) Received() int64     { return c.received.Load() }
func (c *Conn) LastRead() time.Time { return time.Unix(0, c.lastRead.Load()) }

// Touch counts now as a read, for a pacer starting its watch.
func (c *Conn) Touch() { c.lastRead.Store(time.Now().UnixNano()) }

// Read hands go-smtp one command line per call in command mode and body
// bytes in DATA and BDAT modes.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.read(p)
	if n > 0 {
		c.received.Add(int64(n))
		c.lastRead.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *Conn) read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		switch {
		case c.mode == modeRaw:
			return c.br.Read(p)
		case c.mode == modeData:
			c.bodyDeadline()
			n, ended, err := ReadBody(c.br, p, &c.dot)
			if ended {
				c.mode = modeCommand
			}
			return n, err
		case c.mode == modeBDAT:
			c.bodyDeadline()
			n, err := c.br.Read(p[:min(int64(len(p)), c.bdatLeft)])
			if c.bdatLeft -= int64(n); c.bdatLeft == 0 {
				c.mode = modeCommand
			}
			return n, err
		case c.rerr != nil:
			return 0, c.rerr
		}
		c.readCommand()
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// bodyDeadline gives each read of a body a deadline of its own.
func (c *Conn) bodyDeadline() {
	if c.opts.BodyTimeout > 0 && c.br.Buffered() == 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.opts.BodyTimeout))
	}
}

// readCommand reads the next command line into pending, or sets rerr.
// pending is a slice of the reader's buffer, which is not read again
// before go-smtp has taken all of it.
func (c *Conn) readCommand() {
	line, err := c.br.ReadSlice('\n')
	if c.midLine {
		// The rest of an over-long line goes to go-smtp as it is, which
		// refuses the line; the rules never see it as a command.
		c.midLine = err == bufio.ErrBufferFull
		if err == bufio.ErrBufferFull {
			err = nil
		}
		c.pending, c.rerr = line, err
		return
	}
	tooLong := err == bufio.ErrBufferFull || err == nil && c.opts.MaxLine > 0 && len(line) > c.opts.MaxLine
	switch {
	case tooLong && c.opts.MaxLine > 0:
		for err == bufio.ErrBufferFull {
			_, err = c.br.ReadSlice('\n')
		}
		if err != nil {
			c.rerr = err
			return
		}
		c.Say("500 5.5.0 Line too long")
	case tooLong:
		// go-smtp answers the over-long line (or refuses it).
		c.verb = Verb(line)
		c.pending, c.midLine = line, err == bufio.ErrBufferFull
	case err != nil:
		c.pending, c.rerr = line, err
	default:
		c.verb = Verb(line)
		if !c.opts.Rules.Command(c, c.verb, line) {
			return
		}
		if c.verb == "BDAT" {
			if n := ChunkSize(string(line[min(5, len(line)):])); n > 0 {
				c.mode, c.bdatLeft = modeBDAT, n
			}
		}
		c.pending = line
	}
}

// Verb is the command verb as go-smtp's parseCmd finds it, upper case:
// STARTTLS by prefix, otherwise four letters alone or followed by a
// space; "" for anything else.
func Verb(line []byte) string {
	s := strings.TrimRight(string(line), "\r\n")
	if len(s) >= 8 && strings.EqualFold(s[:8], "STARTTLS") {
		return "STARTTLS"
	}
	if len(s) < 4 || len(s) == 5 || (len(s) > 5 && s[4] != ' ') {
		return ""
	}
	return strings.ToUpper(s[:4])
}

// Skip drops n bytes the client sent (a BDAT chunk whose command the
// rules refused).
func (c *Conn) Skip(n int64) {
	if _, err := io.CopyN(io.Discard, c.br, n); err != nil {
		c.rerr = err
	}
}

// StartTLS runs the server side of the handshake within timeout, after
// the rules said 220 (RFC 3207 §4); whatever the client pipelined after
// STARTTLS is dropped. go-smtp goes on seeing plaintext.
func (c *Conn) StartTLS(cfg *tls.Config, timeout time.Duration) error {
	tc := tls.Server(c.Conn, cfg)
	c.Conn.SetDeadline(time.Now().Add(timeout))
	err := tc.Handshake()
	c.Conn.SetDeadline(time.Time{})
	if err != nil {
		c.rerr = err
		c.Close()
		return err
	}
	st := tc.ConnectionState()
	c.tls.Store(&st)
	c.wmu.Lock()
	c.cur = tc
	c.wmu.Unlock()
	c.br = bufio.NewReaderSize(tc, c.opts.BufSize)
	return nil
}

// Close closes the connection once and calls release. Under TLS it sends
// close_notify first (RFC 8446 §6.1), so that the client sees a clean
// end of the session, not a truncation.
func (c *Conn) Close() error {
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
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// SetOuter tells c where go-smtp writes (conn() is its connection now):
// once go-smtp runs TLS over c, a reply of c's own must go through it.
func (c *Conn) SetOuter(conn func() net.Conn) { c.outer.Store(&conn) }

// HangUp says r (a reply that ends the session, RFC 5321 §3.8) and
// closes the connection, from any goroutine; it takes no go-smtp lock.
func (c *Conn) HangUp(r *smtp.SMTPError) {
	if f := c.outer.Load(); f != nil {
		if o := (*f)(); o != nil && o != net.Conn(c) && !c.closed.Load() {
			// go-smtp's TLS writes to c, which takes wmu.
			o.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(o, ReplyLine(r))
			c.Close()
			return
		}
	}
	c.wmu.Lock()
	if !c.closed.Load() {
		c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c.cur, ReplyLine(r))
	}
	c.wmu.Unlock()
	c.Close()
}
