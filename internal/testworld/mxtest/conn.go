package mxtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/caliop/relay/internal/smtpfront"
)

// handshakeTimeout bounds the server side of a STARTTLS handshake.
const handshakeTimeout = 10 * time.Second

// listener counts and tracks the connections it accepts, and wraps each in
// a conn.
type listener struct {
	net.Listener
	s *Server
}

func (l *listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &conn{Conn: raw, s: l.s, cur: raw, br: bufio.NewReader(raw)}
	l.s.mu.Lock()
	l.s.connections++
	l.s.sources = append(l.s.sources, raw.RemoteAddr().String())
	l.s.conns[c] = struct{}{}
	l.s.mu.Unlock()
	return c, nil
}

type readMode int

const (
	modeCommand readMode = iota
	modeData             // DATA body until the "." line
	modeBDAT             // bdatLeft octets of a BDAT chunk
)

// conn sits between the TCP connection and go-smtp. It owns STARTTLS (so
// that it sees the plaintext inside TLS), records command lines, counts
// MAIL, and rewrites the EHLO reply.
//
// go-smtp calls Read and Write from the one goroutine that serves the
// connection, so the fields below mu need no lock; Close may come from
// another goroutine and only touches the embedded raw connection.
type conn struct {
	net.Conn // raw TCP: addresses, deadlines and Close

	s *Server

	mu  sync.Mutex
	tls *tls.ConnectionState // set once STARTTLS succeeded

	cur      net.Conn      // raw, or the *tls.Conn after STARTTLS
	br       *bufio.Reader // reads cur
	rerr     error         // sticky read error
	pending  []byte        // bytes handed to go-smtp on the next Read
	mode     readMode
	bdatLeft int64
	needEHLO bool // STARTTLS done, no EHLO/HELO yet

	ehlo  bool     // the next reply written answers EHLO
	wbuf  []byte   // partial reply line
	lines [][]byte // EHLO reply lines held until its last line
}

// tlsState returns the TLS state of the connection, or nil before STARTTLS.
func (c *conn) tlsState() *tls.ConnectionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tls
}

func (c *conn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// Read hands go-smtp at most one command line per call, so that a mode
// change decided by the reply to that line (354 after DATA) is in force
// before the next line is read.
func (c *conn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.fill()
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// fill reads the next unit from the client into pending, or sets rerr.
func (c *conn) fill() {
	if c.mode == modeBDAT {
		buf := make([]byte, min(c.bdatLeft, 32<<10))
		n, err := c.br.Read(buf)
		c.pending = buf[:n]
		c.bdatLeft -= int64(n)
		if c.bdatLeft == 0 {
			c.mode = modeCommand
		}
		c.rerr = err
		return
	}
	line, err := c.br.ReadBytes('\n')
	c.rerr = err
	if len(line) == 0 {
		return
	}
	if c.mode == modeData {
		if bytes.Equal(line, []byte(".\r\n")) {
			c.mode = modeCommand
		}
		c.pending = line
		return
	}
	if err == nil && c.command(line) {
		c.pending = line
	}
}

// command records a command line and reports whether go-smtp should see
// it; STARTTLS and commands refused for a missing EHLO are answered here.
func (c *conn) command(line []byte) bool {
	text := strings.TrimRight(string(line), "\r\n")
	fields := strings.Fields(text)
	verb := ""
	if len(fields) > 0 {
		verb = strings.ToUpper(fields[0])
	}
	c.s.recordCommand(text, verb == "MAIL")
	switch verb {
	case "STARTTLS":
		if c.s.tlsConfig == nil || c.tlsState() != nil {
			return true // go-smtp answers 502
		}
		c.startTLS()
		return false
	case "XCLIENT":
		if !c.s.behavior.XCLIENT {
			return true // go-smtp answers 500
		}
		// XCLIENT_README: the session starts over with a new greeting.
		c.reply("220 " + c.s.Name + " ESMTP")
		return false
	case "EHLO", "HELO":
		c.needEHLO = false
		c.ehlo = verb == "EHLO"
		c.lines = nil
	case "MAIL", "RCPT", "DATA", "BDAT":
		size := int64(0)
		if verb == "BDAT" {
			size = smtpfront.ChunkSize(strings.Join(fields[1:], " "))
		}
		// RFC 3207 §4.2: after TLS starts the server forgets the
		// earlier EHLO, so a transaction needs a new one first.
		if c.needEHLO {
			c.reply("503 5.5.1 EHLO required after STARTTLS")
			if _, err := io.CopyN(io.Discard, c.br, size); err != nil && c.rerr == nil {
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

// startTLS answers STARTTLS and runs the server handshake. A failed
// handshake ends the connection, as the client cannot go on in plaintext.
func (c *conn) startTLS() {
	c.reply("220 2.0.0 Ready to start TLS")
	if c.rerr != nil {
		return
	}
	tc := tls.Server(c.Conn, c.s.tlsConfig)
	ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		c.rerr = fmt.Errorf("mxtest: STARTTLS handshake: %w", err)
		c.Conn.Close()
		return
	}
	st := tc.ConnectionState()
	c.mu.Lock()
	c.tls = &st
	c.mu.Unlock()
	// RFC 3207 §4.2: anything the client pipelined after STARTTLS in
	// plaintext is discarded.
	c.cur, c.br = tc, bufio.NewReader(tc)
	c.needEHLO = true
	c.ehlo = false
}

// reply writes a reply of the wrapper's own, bypassing the EHLO filter.
func (c *conn) reply(text string) {
	if _, err := io.WriteString(c.cur, text+"\r\n"); err != nil {
		c.rerr = err
	}
}

// Write passes go-smtp's replies on, line by line, holding the EHLO reply
// until its last line so that keywords can be removed or added.
func (c *conn) Write(p []byte) (int, error) {
	c.wbuf = append(c.wbuf, p...)
	var out []byte
	for {
		i := bytes.IndexByte(c.wbuf, '\n')
		if i < 0 {
			break
		}
		line := append([]byte(nil), c.wbuf[:i+1]...)
		c.wbuf = c.wbuf[i+1:]
		out = append(out, c.replyLine(line)...)
	}
	if len(out) > 0 {
		if _, err := c.cur.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// replyLine returns what to send for one reply line written by go-smtp.
func (c *conn) replyLine(line []byte) []byte {
	if !c.ehlo {
		if c.mode == modeCommand && bytes.HasPrefix(line, []byte("354")) {
			c.mode = modeData
		}
		return line
	}
	c.lines = append(c.lines, line)
	if len(line) >= 4 && line[3] == '-' {
		return nil
	}
	c.ehlo = false
	lines := c.lines
	c.lines = nil
	if len(lines) == 1 || !bytes.HasPrefix(lines[0], []byte("250")) {
		return bytes.Join(lines, nil)
	}
	return c.ehloReply(lines)
}

// ehloReply rebuilds a multi-line EHLO reply: the greeting line, then
// STARTTLS or REQUIRETLS as the wrapper offers them, then go-smtp's
// keywords less the hidden ones, with "250 " on the last line only.
func (c *conn) ehloReply(lines [][]byte) []byte {
	kept := []string{string(bytes.TrimRight(lines[0][4:], "\r\n"))}
	isTLS := c.tlsState() != nil
	if !isTLS && c.s.tlsConfig != nil {
		kept = append(kept, "STARTTLS")
	}
	if isTLS && c.s.behavior.REQUIRETLS {
		kept = append(kept, "REQUIRETLS")
	}
	if c.s.behavior.XCLIENT {
		kept = append(kept, "XCLIENT NAME ADDR PORT PROTO HELO")
	}
	for _, l := range lines[1:] {
		kept = append(kept, string(bytes.TrimRight(l[4:], "\r\n")))
	}
	var b bytes.Buffer
	out := kept[:1]
	for _, k := range kept[1:] {
		if !c.s.hidden(k) {
			out = append(out, k)
		}
	}
	for i, k := range out {
		sep := "-"
		if i == len(out)-1 {
			sep = " "
		}
		fmt.Fprintf(&b, "250%s%s\r\n", sep, k)
	}
	return b.Bytes()
}
