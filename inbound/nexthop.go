package inbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/smtpreply"
)

// errXCLIENT: the next hop offers XCLIENT but refused it. Going on would
// hide the client from its restrictions, so the session does not.
var errXCLIENT = errors.New("XCLIENT refused")

// errNoXCLIENT: the next hop does not offer XCLIENT (with ADDR) to
// Caliop. It would see every client as Caliop, which it trusts, and relay
// for them (DESIGN.md invariant 5): no transaction goes to it.
var errNoXCLIENT = errors.New("next hop does not offer XCLIENT ADDR to Caliop: list Caliop's source address in its smtpd_authorized_xclient_hosts, or set inbound.next_hop_xclient: false if it must not trust Caliop's address")

// nextHop is a session's SMTP connection to the MTA behind (RFC 5321,
// client side): plaintext, on loopback or a trusted network.
type nextHop struct {
	conn    net.Conn
	text    *textproto.Conn
	ext     map[string]string // EHLO keywords, upper case
	helo    string            // the client HELO it was opened for
	timeout time.Duration     // per command
}

// dialNextHop connects, reads the greeting and says EHLO; when the next
// hop offers XCLIENT it passes the client on and says EHLO again.
func (s *Server) dialNextHop(p peer) (*nextHop, error) {
	o := s.opts
	ctx, cancel := context.WithTimeout(context.Background(), o.NextHopTimeout)
	defer cancel()
	conn, err := o.Dial(ctx, "tcp", o.NextHop)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	h := &nextHop{conn: conn, text: textproto.NewConn(conn), helo: p.helo, timeout: o.NextHopTimeout}
	if err := h.open(o.Hostname, p, o.AllowNoXCLIENT); err != nil {
		conn.Close()
		return nil, err
	}
	return h, nil
}

func (h *nextHop) open(hostname string, p peer, allowNoXCLIENT bool) error {
	h.conn.SetDeadline(time.Now().Add(h.timeout))
	if r, err := h.reply(); err != nil || r.Code != 220 {
		return fmt.Errorf("greeting: %w", errors.Join(err, replyErr(r)))
	}
	if err := h.ehlo(hostname); err != nil {
		return err
	}
	offered, ok := h.ext["XCLIENT"]
	if !ok || !offersADDR(offered) {
		if allowNoXCLIENT {
			return nil
		}
		return errNoXCLIENT
	}
	cmd := xclientCommand(offered, p)
	// XCLIENT_README: the server answers with a new greeting (220; 250
	// before Postfix 2.3) and the session starts over.
	if r, err := h.cmd("%s", cmd); err != nil || !positive(r) {
		return fmt.Errorf("%w: %w", errXCLIENT, errors.Join(err, replyErr(r)))
	}
	return h.ehlo(ehloName(p.helo, hostname))
}

// replyErr is r as an error, nil for nil.
func replyErr(r *smtp.SMTPError) error {
	if r == nil {
		return nil
	}
	return r
}

// ehlo says EHLO and records the keywords (RFC 5321 §4.1.1.1).
func (h *nextHop) ehlo(name string) error {
	h.conn.SetDeadline(time.Now().Add(h.timeout))
	if err := h.text.PrintfLine("EHLO %s", name); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	code, msg, err := h.text.ReadResponse(0)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if code != 250 {
		return fmt.Errorf("EHLO: %w", smtpreply.Parse(code, msg))
	}
	h.ext = map[string]string{}
	for _, l := range strings.Split(msg, "\n")[1:] {
		k, v, _ := strings.Cut(l, " ")
		h.ext[strings.ToUpper(k)] = v
	}
	return nil
}

func (h *nextHop) has(keyword string) bool {
	_, ok := h.ext[keyword]
	return ok
}

// reply reads one reply, possibly multi-line.
func (h *nextHop) reply() (*smtp.SMTPError, error) {
	code, msg, err := h.text.ReadResponse(0)
	if err != nil {
		return nil, err
	}
	return smtpreply.Parse(code, msg), nil
}

// cmd sends one command and reads its reply, within the command timeout.
func (h *nextHop) cmd(format string, args ...any) (*smtp.SMTPError, error) {
	h.conn.SetDeadline(time.Now().Add(h.timeout))
	if err := h.text.PrintfLine(format, args...); err != nil {
		return nil, err
	}
	return h.reply()
}

// mailParams are the MAIL parameters passed on (RFC 1870 SIZE, RFC 6152
// BODY, RFC 6531 SMTPUTF8), each only if the next hop offers it; a body
// declared 8-bit or SMTPUTF8 it does not take is refused.
func (h *nextHop) mailParams(o *smtp.MailOptions) (string, *smtp.SMTPError) {
	var b strings.Builder
	if o.Size > 0 && h.has("SIZE") {
		fmt.Fprintf(&b, " SIZE=%d", o.Size)
	}
	switch {
	case o.Body == smtp.Body8BitMIME && !h.has("8BITMIME"):
		return "", errNo8BitMIME
	case o.Body != "" && h.has("8BITMIME"):
		fmt.Fprintf(&b, " BODY=%s", o.Body)
	}
	if o.UTF8 {
		if !h.has("SMTPUTF8") {
			return "", errNoUTF8
		}
		b.WriteString(" SMTPUTF8")
	}
	return b.String(), nil
}

// data sends the body, as one BDAT LAST chunk when the next hop offers
// CHUNKING (RFC 3030 §2), else after DATA, dot-stuffed (RFC 5321
// §4.5.2), and returns the reply to its end, read within wait (RFC 5321
// §4.5.3.2.6). body is CRLF text of exactly size bytes.
func (h *nextHop) data(body io.Reader, size int64, wait time.Duration) (*smtp.SMTPError, error) {
	body = &deadlineReader{r: body, conn: h.conn, timeout: h.timeout}
	if h.has("CHUNKING") {
		fmt.Fprintf(h.text.W, "BDAT %d LAST\r\n", size)
		n, err := io.Copy(h.text.W, body)
		if err == nil && n != size {
			// Never send a chunk of the wrong length: the next hop
			// would read the rest as commands.
			err = fmt.Errorf("body is %d bytes, announced %d", n, size)
		}
		if err == nil {
			err = h.text.W.Flush()
		}
		if err != nil {
			return nil, err
		}
	} else {
		r, err := h.cmd("DATA")
		if err != nil || r.Code != 354 {
			return r, err
		}
		dw := h.text.DotWriter()
		if _, err := io.Copy(dw, body); err != nil {
			return nil, err
		}
		if err := dw.Close(); err != nil {
			return nil, err
		}
	}
	h.conn.SetDeadline(time.Now().Add(wait))
	return h.reply()
}

// deadlineReader gives the connection a fresh deadline for each piece of
// the body written, rather than one for all of it.
type deadlineReader struct {
	r       io.Reader
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineReader) Read(p []byte) (int, error) {
	d.conn.SetDeadline(time.Now().Add(d.timeout))
	return d.r.Read(p)
}

// keepAlive sends NOOP every interval until stop, so that the next hop
// does not drop the connection as idle while a slow client sends its body
// (Postfix smtpd_timeout). stop reports whether the connection is still
// good. h may be nil.
func (h *nextHop) keepAlive(every time.Duration) (stop func() bool) {
	if h == nil {
		return func() bool { return false }
	}
	quit, alive := make(chan struct{}), make(chan bool, 1)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				alive <- true
				return
			case <-t.C:
				if r, err := h.cmd("NOOP"); err != nil || r.Code != 250 {
					alive <- false
					return
				}
			}
		}
	}()
	return func() bool { close(quit); return <-alive }
}

// quit says QUIT without waiting for the reply, and closes.
func (h *nextHop) quit() {
	h.conn.SetDeadline(time.Now().Add(time.Second))
	h.text.PrintfLine("QUIT")
	h.conn.Close()
}
