package inbound

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/internal/smtpfront"
)

// session is one client session, and its connection to the next hop,
// opened at the first MAIL and reused (after RSET) for the session's
// later transactions.
type session struct {
	s    *Server
	conn *smtp.Conn
	c    *clientConn
	log  *zap.Logger

	// hopMu is held by Mail, Rcpt and Data, which use the next hop. With
	// BDAT go-smtp runs Data in a goroutine of its own; Logout may come
	// from Shutdown. hop is read without hopMu only to close it.
	hopMu sync.Mutex
	hop   atomic.Pointer[nextHop]
	txn   *txn // the transaction, since the next hop accepted MAIL
}

// txn is what a transaction needs at DATA, gathered at MAIL, in the
// goroutine serving the connection.
type txn struct {
	id       string
	domain   string // sender domain, "" for the null sender
	utf8     bool   // MAIL carried SMTPUTF8 (RFC 6531 §3.4)
	received receivedInfo
	rcpts    int // recipients the next hop accepted
}

func newSession(s *Server, conn *smtp.Conn, c *clientConn) *session {
	return &session{s: s, conn: conn, c: c, log: s.opts.Log.With(zap.String("client", c.RemoteAddr().String()))}
}

// Mail opens a transaction at the next hop (RFC 5321 §4.1.1.2): the
// client gets 250 only after the next hop gave it.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	// Shutdown spares a session inside a transaction.
	if !sess.s.front.Begin(sess.c.Conn) {
		return smtpfront.ShuttingDown(sess.s.opts.Hostname)
	}
	err := sess.mail(from, opts)
	if err != nil {
		sess.s.front.End(sess.c.Conn)
	}
	return err
}

func (sess *session) mail(from string, opts *smtp.MailOptions) error {
	if opts == nil {
		opts = &smtp.MailOptions{}
	}
	sender, err := address.Parse(from, address.Sender, opts.UTF8)
	if err != nil {
		sess.log.Info("bad sender", zap.String("from", from), zap.Error(err))
		return err
	}
	domain := sender.Domain
	isTLS := sess.c.isTLS()
	if !isTLS && (sess.s.opts.RequireTLSAll || sess.s.partner(domain)) {
		sess.log.Info("tls required", zap.String("domain", domain))
		return errNeedTLS
	}
	sess.hopMu.Lock()
	defer sess.hopMu.Unlock()
	sess.txn = nil
	h := sess.openHop()
	if h == nil {
		return errNextHop
	}
	params, refused := h.mailParams(opts)
	if refused != nil {
		return refused
	}
	reply, err := h.Mail(sender, params)
	if err != nil {
		sess.dropHop("mail", err)
		return errNextHop
	}
	if !positive(reply) {
		return sess.passOn(reply)
	}
	sess.txn = &txn{id: smtpfront.NewID(), domain: domain, utf8: opts.UTF8, received: sess.receivedInfo()}
	sess.s.opts.Stats.add(domain, isTLS)
	sess.s.opts.Metrics.InboundSession(domain, sess.c.tlsVersion())
	return nil
}

// openHop returns the next hop connection, reset for a new transaction,
// or a new one; nil when the next hop cannot be reached.
func (sess *session) openHop() *nextHop {
	helo := sess.conn.Hostname()
	if h := sess.hop.Load(); h != nil {
		// A new HELO (after STARTTLS, say) needs a new XCLIENT.
		if h.helo == helo {
			if r, err := h.Cmd("RSET"); err == nil && r.Code == 250 {
				return h
			}
		}
		sess.dropHop("reuse", nil)
	}
	h, err := sess.s.dialNextHop(sess.peer(helo))
	if errors.Is(err, errNoXCLIENT) {
		sess.log.Error("next hop refused: no XCLIENT", zap.String("next_hop", sess.s.opts.NextHop), zap.Error(err))
		return nil
	}
	if err != nil {
		sess.log.Warn("next hop unavailable", zap.String("next_hop", sess.s.opts.NextHop), zap.Error(err))
		return nil
	}
	sess.hop.Store(h)
	return h
}

func (sess *session) peer(helo string) peer {
	ap, _ := netip.ParseAddrPort(sess.c.RemoteAddr().String())
	return peer{addr: ap, helo: helo, esmtp: sess.c.esmtp.Load()}
}

// dropHop closes the next hop connection after a failure.
func (sess *session) dropHop(stage string, err error) {
	if err != nil {
		sess.log.Warn("next hop failed", zap.String("stage", stage), zap.Error(err))
	}
	if h := sess.hop.Swap(nil); h != nil {
		h.Quit()
	}
}

// passOn returns the next hop's refusal as the client's reply. A 421
// means the next hop closes: the client gets it as 451, since the client
// session goes on.
func (sess *session) passOn(r *smtp.SMTPError) error {
	if r.Code == 421 {
		sess.dropHop("421", r)
		return &smtp.SMTPError{Code: 451, EnhancedCode: r.EnhancedCode, Message: r.Message}
	}
	return r
}

// Rcpt accepts a recipient of the operator's domains that the next hop
// accepted (RFC 5321 §4.1.1.3); others are refused without a word to the
// next hop (DESIGN.md invariant 5), and so is a local part with a routing
// operator: the next hop trusts Caliop and would route it onward.
func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	sess.hopMu.Lock()
	defer sess.hopMu.Unlock()
	h := sess.hop.Load()
	if h == nil || sess.txn == nil {
		return errNextHop
	}
	rcpt, err := address.Parse(to, address.Recipient, sess.txn.utf8)
	if err != nil {
		sess.log.Info("bad recipient", zap.String("to", to), zap.Error(err))
		return err
	}
	if rcpt.IsLiteral() || !sess.s.domains[rcpt.Domain] {
		sess.log.Info("relaying denied", zap.String("to", to))
		return errRelayDenied
	}
	if rcpt.HasRoutingOperator() {
		sess.log.Info("routing operator refused", zap.String("to", to))
		return errRoutingDenied
	}
	reply, err := h.Rcpt(rcpt)
	if err != nil {
		sess.dropHop("rcpt", err)
		return errNextHop
	}
	if !positive(reply) {
		return sess.passOn(reply)
	}
	sess.txn.rcpts++
	return nil
}

// Reset ends the transaction; while draining, the session too. go-smtp
// calls it holding its connection lock, and with BDAT maybe while Data
// runs: it touches neither the next hop nor the transaction (the next
// MAIL sends RSET first).
func (sess *session) Reset() {
	if sess.s.front.End(sess.c.Conn) {
		sess.c.HangUp(smtpfront.ShuttingDown(sess.s.opts.Hostname))
	}
}

// Logout ends the session and its next hop connection: politely unless
// the next hop is in use (a forced Shutdown), then at once.
func (sess *session) Logout() error {
	if sess.hopMu.TryLock() {
		defer sess.hopMu.Unlock()
		sess.dropHop("", nil)
		return nil
	}
	if h := sess.hop.Load(); h != nil {
		h.Net.Close()
	}
	return nil
}

var _ smtp.Session = (*session)(nil)
