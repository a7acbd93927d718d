package delivery

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/internal/smtpconn"
)

// client speaks SMTP to one destination MX (RFC 5321), with PIPELINING
// (RFC 2920) when offered. It never sends MAIL on its own: the caller does,
// once the connection passed the plan. Deadlines come from the caller's
// context (Deliverer.attemptOn, Txn.bind), not per command.
type client struct {
	*smtpconn.Conn
	host   string // MX host name
	addr   string // ip:port dialled
	tls    *tls.ConnectionState
	proved proof
	// verifyErr is why the certificate is not WebPKI-valid for host,
	// nil when it is (or in plaintext).
	verifyErr error
	sent      int  // messages sent on this connection
	owed      bool // reused after an unfinished transaction: RSET goes ahead of the next MAIL
	// probe: reused after a finished transaction, so no RSET is owed
	// (RFC 5321 §4.1.1.4: the end of data clears the transaction); the
	// first reply proves the connection still alive.
	probe bool
	dirty bool // MAIL was accepted and the transaction not yet ended
}

func newClient(conn net.Conn, host, addr string) *client {
	return &client{Conn: smtpconn.New(conn), host: host, addr: addr}
}

// transaction is one MAIL, its RCPTs and the body.
type transaction struct {
	from   address.Address
	params string // MAIL parameters, each with a leading space
	to     []address.Address
	body   io.Reader
	size   int64 // of body, exactly
}

// outcome is what the server said: to MAIL, to each RCPT, and to the end
// of DATA (nil when DATA was not reached).
type outcome struct {
	mail *smtp.SMTPError
	rcpt []*smtp.SMTPError
	data *smtp.SMTPError
}

// send runs one transaction. Replies come back in outcome; a non-nil error
// means the connection broke and nothing after the last reply is known.
func (c *client) send(tx transaction) (outcome, error) {
	if c.Has("PIPELINING") {
		return c.sendPipelined(tx)
	}
	var out outcome
	var err error
	if out.mail, err = c.Mail(tx.from, tx.params); err != nil || out.mail.Code != 250 {
		return out, err
	}
	c.dirty = true
	accepted := 0
	for _, rcpt := range tx.to {
		r, err := c.Rcpt(rcpt)
		if err != nil {
			return out, err
		}
		out.rcpt = append(out.rcpt, r)
		if r.Code/100 == 2 {
			accepted++
		}
	}
	if accepted == 0 {
		return out, c.reset()
	}
	r, err := c.Cmd("DATA")
	if err != nil {
		return out, err
	}
	if r.Code != 354 {
		out.data = r
		return out, nil
	}
	out.data, err = c.body(tx.body)
	return out, err
}

// sendPipelined sends MAIL, every RCPT and DATA in one write and then reads
// the replies in order (RFC 2920 §3.1); with CHUNKING, the body too as
// one BDAT LAST chunk (sendChunked).
func (c *client) sendPipelined(tx transaction) (outcome, error) {
	if c.Has("CHUNKING") {
		return c.sendChunked(tx)
	}
	c.writeEnvelope(tx)
	c.Text.W.WriteString("DATA\r\n")
	if err := c.flush(); err != nil {
		return outcome{}, err
	}
	out, accepted, err := c.envelopeReplies(tx)
	if err != nil {
		return out, err
	}
	r, err := c.Reply()
	if err != nil {
		return out, err
	}
	if r.Code != 354 {
		if out.mail.Code == 250 && accepted > 0 {
			out.data = r
		}
		return out, nil
	}
	if out.mail.Code != 250 || accepted == 0 {
		// RFC 2920 §3.1: a server that accepted DATA without a valid
		// recipient gets an empty message, whose reply is ignored.
		if _, err := c.body(strings.NewReader("")); err != nil {
			return out, err
		}
		return out, nil
	}
	out.data, err = c.body(tx.body)
	return out, err
}

// sendChunked sends MAIL, every RCPT and the body as one BDAT LAST chunk
// in one write (RFC 3030 §4.2: BDAT may be pipelined; RFC 2920), then
// reads the replies in order: one round trip per message. A server that
// accepted no recipient answers the chunk with an error, which is not
// the message's.
func (c *client) sendChunked(tx transaction) (outcome, error) {
	c.writeEnvelope(tx)
	if err := c.WriteChunk(tx.body, tx.size); err != nil {
		return outcome{}, err
	}
	if err := c.flush(); err != nil {
		return outcome{}, err
	}
	c.sent++
	out, accepted, err := c.envelopeReplies(tx)
	if err != nil {
		return out, err
	}
	r, err := c.Reply()
	if err != nil {
		return out, err
	}
	// A taken last chunk ends the transaction (RFC 3030 §2); after a
	// refused one (no recipient, say) an RSET goes ahead of the next
	// MAIL, as after DATA was never reached.
	c.dirty = r.Code/100 != 2
	if out.mail.Code == 250 && accepted > 0 {
		out.data = r
	}
	return out, nil
}

// writeEnvelope buffers the owed RSET, MAIL and every RCPT of tx.
func (c *client) writeEnvelope(tx transaction) {
	c.queueReset()
	c.WriteMail(tx.from, tx.params)
	for _, rcpt := range tx.to {
		c.WriteRcpt(rcpt)
	}
}

// envelopeReplies reads the replies to what writeEnvelope sent, and
// counts the recipients accepted.
func (c *client) envelopeReplies(tx transaction) (out outcome, accepted int, err error) {
	if err := c.resetReply(); err != nil {
		return out, 0, err
	}
	if out.mail, err = c.mailReply(); err != nil {
		return out, 0, err
	}
	for range tx.to {
		r, err := c.Reply()
		if err != nil {
			return out, accepted, err
		}
		out.rcpt = append(out.rcpt, r)
		if r.Code/100 == 2 {
			accepted++
		}
	}
	return out, accepted, nil
}

// mail sends MAIL FROM, with the RSET a reused connection owes ahead of it
// in the same write, and returns the reply to MAIL.
func (c *client) mail(from address.Address, params string) (*smtp.SMTPError, error) {
	c.queueReset()
	c.WriteMail(from, params)
	if err := c.flush(); err != nil {
		return nil, err
	}
	if err := c.resetReply(); err != nil {
		return nil, err
	}
	return c.mailReply()
}

// mailRcpt sends MAIL FROM and a first RCPT TO, in one write with the
// owed RSET under PIPELINING (RFC 2920 §3.1), one after the other without.
// rcpt is nil when MAIL was refused or the connection broke before.
func (c *client) mailRcpt(from address.Address, params string, to address.Address) (mail, rcpt *smtp.SMTPError, err error) {
	if !c.Has("PIPELINING") {
		if mail, err = c.mail(from, params); err != nil || mail.Code != 250 {
			return mail, nil, err
		}
		rcpt, err = c.Rcpt(to)
		return mail, rcpt, err
	}
	c.queueReset()
	c.WriteMail(from, params)
	c.WriteRcpt(to)
	if err := c.flush(); err != nil {
		return nil, nil, err
	}
	if err := c.resetReply(); err != nil {
		return nil, nil, err
	}
	if mail, err = c.mailReply(); err != nil {
		return nil, nil, err
	}
	rcpt, err = c.Reply()
	if mail.Code != 250 {
		return mail, nil, err // the RCPT reply is a 503 of no interest
	}
	return mail, rcpt, err
}

// errStale: a reused connection failed its RSET; the server closed it or
// timed it out while idle. Nothing was sent that counts: the caller
// retries on a new connection.
var errStale = errors.New("idle connection went stale")

// owe marks a connection taken from the pool: it must be reset before its
// next transaction. With PIPELINING the RSET rides in the same write as
// MAIL (RFC 2920 §3.1), saving a round trip per message; without, it is
// sent now.
func (c *client) owe() error {
	switch {
	case !c.Has("PIPELINING"):
		return c.reset()
	case c.dirty:
		c.owed = true
	default:
		c.probe = true
	}
	return nil
}

// flush sends what is buffered; on a connection taken from the pool, a
// failure means it went stale while idle (errStale).
func (c *client) flush() error {
	err := c.Text.W.Flush()
	if err != nil && c.probe {
		c.probe = false
		return fmt.Errorf("%w: %w", errStale, err)
	}
	return err
}

// mailReply reads the reply to MAIL. On a connection reused without RSET,
// no reply or a 421 (the server timed the idle session out) means it went
// stale: nothing was accepted (errStale).
func (c *client) mailReply() (*smtp.SMTPError, error) {
	r, err := c.Reply()
	if c.probe {
		c.probe = false
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errStale, err)
		}
		if r.Code == 421 {
			return nil, fmt.Errorf("%w: %w", errStale, r)
		}
	}
	if err == nil && r.Code == 250 {
		c.dirty = true
	}
	return r, err
}

// queueReset writes the owed RSET into the buffer.
func (c *client) queueReset() {
	if c.owed {
		c.Text.W.WriteString("RSET\r\n")
	}
}

// resetReply reads the reply to a queued RSET; anything but 250 means the
// connection is no good (errStale).
func (c *client) resetReply() error {
	if !c.owed {
		return nil
	}
	c.owed = false
	r, err := c.Reply()
	if err == nil && r.Code != 250 {
		err = r
	}
	if err != nil {
		return fmt.Errorf("%w: RSET: %w", errStale, err)
	}
	c.dirty = false
	return nil
}

// reset prepares a cached connection for another transaction.
func (c *client) reset() error {
	r, err := c.Cmd("RSET")
	if err == nil && r.Code != 250 {
		err = r
	}
	if err == nil {
		c.dirty = false
	}
	return err
}
