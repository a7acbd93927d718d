package relay

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/policy"
)

// session is one upstream SMTP or LMTP session.
type session struct {
	s      *Server
	conn   *smtp.Conn
	lmtp   bool
	remote netip.Addr
	user   string // authenticated user, "" if none
	// authFails counts AUTH failures on this connection (AuthLimits).
	authFails int
	log       *zap.Logger

	fc    *smtpfront.Conn // the connection below go-smtp (and its TLS)
	rules *xforwardRules

	id   string
	from address.Address
	opts smtp.MailOptions
	rcpt []recipient
	// SMTP mode only: the transaction's route and its downstream side.
	route    string
	routeKey string // route plus whether it is encrypted
	txn      *delivery.Txn
}

func (s *Server) newSession(c *smtp.Conn, lmtp bool) (smtp.Session, error) {
	if s.front.Draining() {
		return nil, smtpfront.ShuttingDown(s.opts.Hostname)
	}
	fc := smtpfront.Of(c.Conn())
	if fc == nil {
		return nil, smtpfront.LocalError(fmt.Errorf("unexpected connection type %T", c.Conn()))
	}
	sess := &session{s: s, conn: c, lmtp: lmtp, fc: fc}
	sess.rules, _ = fc.Rules().(*xforwardRules)
	// Under go-smtp's TLS, a 421 of Caliop's goes through it.
	fc.SetOuter(c.Conn)
	if ap, err := netip.ParseAddrPort(c.Conn().RemoteAddr().String()); err == nil {
		sess.remote = ap.Addr().Unmap()
	}
	sess.log = s.opts.Log.With(zap.String("client", c.Conn().RemoteAddr().String()), zap.Bool("lmtp", lmtp))
	return sess, nil
}

// mayRelay applies DESIGN.md invariant 5: trusted networks or SMTP AUTH.
func (sess *session) mayRelay() bool {
	return sess.user != "" || sess.s.trusted(sess.remote)
}

// Mail starts a transaction if the client may relay.
func (sess *session) Mail(from string, opts *smtp.MailOptions) error {
	if sess.s.front.Draining() {
		return smtpfront.ShuttingDown(sess.s.opts.Hostname)
	}
	if !sess.mayRelay() {
		sess.log.Warn("relay denied", zap.String("from", from))
		if len(sess.s.opts.Users) > 0 {
			return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
		}
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Relay access denied"}
	}
	if opts != nil && opts.RequireTLS {
		if _, isTLS := sess.conn.TLSConnectionState(); !isTLS {
			// RFC 8689 §4.1: REQUIRETLS is only offered, and only
			// valid, on a TLS session.
			return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 10}, Message: "REQUIRETLS needs a TLS session: use STARTTLS first"}
		}
	}
	utf8 := opts != nil && opts.UTF8
	a, err := address.Parse(from, address.Sender, utf8)
	if err != nil {
		sess.log.Info("bad sender", zap.String("from", from), zap.Error(err))
		return err
	}
	if !sess.s.front.Begin(sess.fc) {
		return smtpfront.ShuttingDown(sess.s.opts.Hostname)
	}
	sess.id = smtpfront.NewID()
	sess.from = a
	if opts != nil {
		sess.opts = *opts
	}
	return nil
}

// Rcpt accepts a recipient: in LMTP at once (its reply comes after DATA),
// in SMTP after the destination MX accepted it.
func (sess *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	err := sess.addRecipient(to)
	if se, ok := err.(*smtp.SMTPError); ok {
		return sess.withID(se)
	}
	return err
}

// addRecipient is Rcpt before the reply names the transaction.
func (sess *session) addRecipient(to string) error {
	r, err := parseRecipient(to, sess.opts.UTF8)
	if err != nil {
		return err
	}
	if sess.lmtp {
		if err := sess.decide(&r); err != nil {
			return err
		}
		sess.rcpt = append(sess.rcpt, r)
		return nil
	}
	// The WKD decision and the plan (MX, policies: DNS and HTTPS) run at
	// once: a slow or dead resolver costs one timeout, not two.
	// decide writes r.key meanwhile: the domain is read before.
	domain := r.domain()
	decided := make(chan error, 1)
	if sess.s.opts.PGP == nil {
		decided <- nil
	} else {
		go func() { decided <- sess.decide(&r) }()
	}
	var pre *plannedRoute
	if sess.txn == nil || len(sess.rcpt) == 0 && sess.route != domain {
		ctx, cancel := context.WithTimeout(context.Background(), sess.s.opts.DeliveryTimeout)
		plan, err := sess.s.planFor(ctx, domain)
		cancel()
		pre = &plannedRoute{plan, err}
	}
	if err := <-decided; err != nil {
		return err
	}
	return sess.rcptSMTP(r, pre)
}

// plannedRoute is a plan made ahead, while the WKD decision ran.
type plannedRoute struct {
	plan policy.Plan
	err  error
}

// rcptSMTP fixes the route on the first recipient its MX accepted
// (DESIGN.md invariant 1) and passes each recipient of that route to the
// destination MX. Until one is accepted the downstream transaction is
// tentative: a later recipient of the same route tries it again (no new
// MAIL); one of another route resets and releases it and opens its own.
func (sess *session) rcptSMTP(r recipient, pre *plannedRoute) error {
	key := r.routeKey()
	if sess.txn != nil && key != sess.routeKey {
		if len(sess.rcpt) > 0 {
			return sess.otherRoute(r)
		}
		sess.txn.Close()
		sess.txn, sess.route, sess.routeKey = nil, "", ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), sess.s.opts.DeliveryTimeout)
	defer cancel()
	if sess.txn != nil {
		return sess.accepted(r, sess.txn.Rcpt(ctx, r.addr))
	}
	if pre == nil {
		plan, err := sess.s.planFor(ctx, r.domain())
		pre = &plannedRoute{plan, err}
	}
	plan, err := pre.plan, pre.err
	if err != nil {
		reply := planReply(r.domain(), err)
		sess.s.noteRefused(r.domain(), planFailure(err), 1)
		sess.log.Info("no route", zap.String("domain", r.domain()), zap.Error(err))
		return reply
	}
	env := delivery.Envelope{From: sess.from, EightBit: sess.opts.Body == smtp.Body8BitMIME, UTF8: sess.opts.UTF8, Size: sess.opts.Size, RequireTLS: sess.opts.RequireTLS}
	txn, reply := sess.s.opts.Deliverer.Open(ctx, plan, env, r.addr)
	if txn == nil && reply.Code/100 == 4 {
		if p, ok := sess.replan(ctx, plan); ok {
			txn, reply = sess.s.opts.Deliverer.Open(ctx, p, env, r.addr)
		}
	}
	if txn == nil {
		return reply
	}
	sess.txn, sess.route, sess.routeKey = txn, r.domain(), key
	return sess.accepted(r, reply)
}

// otherRoute is the reply to a recipient whose route is not the one an
// accepted recipient fixed: the MTA sends it in another transaction.
func (sess *session) otherRoute(r recipient) error {
	what := r.domain()
	if r.domain() == sess.route {
		what = r.addr.String() + " (encrypted separately)"
		if r.key == nil {
			what = r.addr.String() + " (not encrypted)"
		}
	}
	return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many recipients: " + what + " goes in another transaction"}
}

// accepted records r if the MX's reply to it is positive, and returns the
// reply for the client: nil for success, since go-smtp accepts a recipient
// only on a nil error (so the MX's 2xx text cannot be passed on; its
// refusals are).
func (sess *session) accepted(r recipient, reply *smtp.SMTPError) error {
	if reply.Code/100 != 2 {
		return reply
	}
	sess.rcpt = append(sess.rcpt, r)
	return nil
}

// Reset ends the transaction; while draining, the session too.
// XFORWARD attributes last one transaction.
func (sess *session) Reset() {
	if sess.rules != nil {
		sess.rules.resetForwarded()
	}
	if sess.txn != nil {
		sess.txn.Close()
	}
	sess.from, sess.opts, sess.rcpt, sess.route, sess.routeKey, sess.txn = address.Null, smtp.MailOptions{}, nil, "", "", nil
	if sess.s.front.End(sess.fc) {
		// 421 4.3.2 (RFC 5321 §3.8: a server shutting down may close
		// with 421 at any time). go-smtp's Reject would say "4.4.5 Too
		// busy", which is not why; HangUp takes no go-smtp lock, which
		// it holds while calling Reset.
		sess.fc.HangUp(smtpfront.ShuttingDown(sess.s.opts.Hostname))
	}
}

// Logout releases the session.
func (sess *session) Logout() error {
	if sess.txn != nil {
		sess.txn.Close()
		sess.txn = nil
	}
	return nil
}

var _ smtp.LMTPSession = (*session)(nil)
var _ smtp.AuthSession = (*session)(nil)
