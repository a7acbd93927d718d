package inbound

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caliop/relay/internal/smtpconn"
	"github.com/emersion/go-smtp"
)

// errXCLIENT: the next hop offers XCLIENT but refused it. Going on would
// hide the client from its restrictions, so the session does not.
var errXCLIENT = errors.New("XCLIENT refused")

// errNoXCLIENT: the next hop does not offer XCLIENT (with ADDR) to
// Caliop. It would see every client as Caliop, which it trusts, and relay
// for them (DESIGN.md invariant 5): no transaction goes to it.
var errNoXCLIENT = errors.New("next hop does not offer XCLIENT ADDR to Caliop: list Caliop's source address in its smtpd_authorized_xclient_hosts, or set inbound.next_hop_xclient: false if it must not trust Caliop's address")

// nextHop is a session's SMTP connection to the MTA behind (RFC 5321,
// client side): plaintext, on loopback or a trusted network. Each
// command has NextHopTimeout, the reply to a message DataTimeout.
type nextHop struct {
	*smtpconn.Conn
	helo string // the client HELO it was opened for
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
	c := smtpconn.New(conn)
	c.Timeout, c.FinalTimeout = o.NextHopTimeout, o.DataTimeout
	h := &nextHop{Conn: c, helo: p.helo}
	if err := h.open(o.Hostname, p, o.AllowNoXCLIENT); err != nil {
		conn.Close()
		return nil, err
	}
	return h, nil
}

func (h *nextHop) open(hostname string, p peer, allowNoXCLIENT bool) error {
	h.Net.SetDeadline(time.Now().Add(h.Timeout))
	if r, err := h.Reply(); err != nil || r.Code != 220 {
		return fmt.Errorf("greeting: %w", errors.Join(err, replyErr(r)))
	}
	if err := h.ehlo(hostname); err != nil {
		return err
	}
	offered, ok := h.Ext["XCLIENT"]
	if !ok || !offersADDR(offered) {
		if allowNoXCLIENT {
			return nil
		}
		return errNoXCLIENT
	}
	cmd := xclientCommand(offered, p)
	// XCLIENT_README: the server answers with a new greeting (220; 250
	// before Postfix 2.3) and the session starts over.
	if r, err := h.Cmd("%s", cmd); err != nil || !positive(r) {
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

// ehlo says EHLO; anything but 250 is an error.
func (h *nextHop) ehlo(name string) error {
	r, err := h.Ehlo(name)
	if err == nil && r.Code != 250 {
		err = r
	}
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	return nil
}

// mailParams are the MAIL parameters passed on (RFC 1870 SIZE, RFC 6152
// BODY, RFC 6531 SMTPUTF8), each only if the next hop offers it; a body
// declared 8-bit or SMTPUTF8 it does not take is refused.
func (h *nextHop) mailParams(o *smtp.MailOptions) (string, *smtp.SMTPError) {
	p, refused := h.MailParams(smtpconn.Message{Size: o.Size, Body: string(o.Body), UTF8: o.UTF8})
	if refused != nil {
		refused.Message = "next hop: " + refused.Message
	}
	return p, refused
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
				if r, err := h.Cmd("NOOP"); err != nil || r.Code != 250 {
					alive <- false
					return
				}
			}
		}
	}()
	return func() bool { close(quit); return <-alive }
}
