package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/internal/smtpconn"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
)

// Txn is a downstream transaction opened step by step, for an upstream
// SMTP session: MAIL is accepted by one MX when the first recipient
// arrives, each RCPT is answered by that MX as it comes, and the end of
// DATA gets the MX's own reply. Upstream replies are then exactly the
// destination's (DESIGN.md invariant 1).
type Txn struct {
	d        *Deliverer
	c        *client
	key      poolKey
	mx       policy.MX
	plan     policy.Plan
	env      Envelope
	to       []address.Address
	accepted int
	start    time.Time
	broken   bool
}

// Open finds an MX of plan that passes its requirement and accepts MAIL
// FROM, and gives it the first recipient, to. On success it returns the
// transaction and the MX's reply to that RCPT (which may be a refusal);
// otherwise no transaction and the reply that sums up the failures.
func (d *Deliverer) Open(ctx context.Context, plan policy.Plan, env Envelope, to address.Address) (*Txn, *smtp.SMTPError) {
	var t *Txn
	var rcpt *smtp.SMTPError
	fail, class := d.tryEach(ctx, plan, env, func(mx policy.MX, addr string) *failure {
		for fresh := false; ; fresh = true {
			var f *failure
			var stale bool
			t, rcpt, f, stale = d.open(ctx, plan, env, to, mx, addr, fresh)
			if !stale {
				return f
			}
		}
	})
	if fail != nil {
		if d.Metrics != nil {
			d.Metrics.Failed(destination(plan), class, 1)
		}
		return nil, fail
	}
	return t, rcpt
}

// open sends MAIL and the first RCPT on a connection to addr: a pooled one
// unless fresh. stale reports a pooled connection found dead; nothing was
// sent.
func (d *Deliverer) open(ctx context.Context, plan policy.Plan, env Envelope, to address.Address, mx policy.MX, addr string, fresh bool) (_ *Txn, rcpt *smtp.SMTPError, _ *failure, stale bool) {
	t0 := d.now()
	req := Request{Plan: plan, Envelope: env}
	c, key, reused, f := d.acquire(ctx, plan, mx, addr, fresh)
	if f != nil {
		d.logAttempt(req, mx, addr, nil, f.reply(), t0, false)
		return nil, nil, f, false
	}
	params, f := mailParams(env, c, mx.Host, addr)
	if f != nil {
		d.logAttempt(req, mx, addr, c, f.reply(), t0, reused)
		d.Pool.put(key, c)
		return nil, nil, f, false
	}
	t := &Txn{d: d, c: c, key: key, mx: mx, plan: plan, env: env, start: t0}
	stop := t.bind(ctx)
	r, rr, err := c.mailRcpt(env.From, params, to)
	stop()
	if errors.Is(err, errStale) {
		c.Net.Close()
		return nil, nil, nil, true
	}
	if r != nil && r.Code == 250 {
		// MAIL was accepted: the MX is the one; what follows is its
		// answer for the recipient, or a lost connection.
		return t, t.rcptReply(to, rr, err), nil, false
	}
	_, _, jf := judge(req, mx.Host, addr, outcome{mail: r}, err)
	d.logAttempt(req, mx, addr, c, jf.reply(), t0, reused)
	if err != nil {
		c.Net.Close()
	} else {
		d.Pool.put(key, c)
	}
	return nil, nil, jf, false
}

// bind makes ctx's end interrupt the connection.
func (t *Txn) bind(ctx context.Context) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		t.c.Net.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { t.c.Net.SetDeadline(time.Unix(1, 0)) })
}

// MX names the host the transaction runs on.
func (t *Txn) MX() string { return t.mx.Host }

// Rcpt sends RCPT TO and returns the MX's reply, naming it.
func (t *Txn) Rcpt(ctx context.Context, to address.Address) *smtp.SMTPError {
	if t.broken {
		return t.lost()
	}
	defer t.bind(ctx)()
	r, err := t.c.Cmd("RCPT TO:%s", to.Path())
	return t.rcptReply(to, r, err)
}

// rcptReply records the MX's reply to RCPT TO:<to> and names the MX in it.
func (t *Txn) rcptReply(to address.Address, r *smtp.SMTPError, err error) *smtp.SMTPError {
	if err != nil {
		t.broken = true
		t.noteFailed(metrics.FailureNetwork, 1)
		return t.lost()
	}
	if r.Code/100 == 2 {
		t.accepted++
		t.to = append(t.to, to)
	} else {
		t.noteFailed(metrics.FailureRefused, 1)
	}
	return said(t.failure(), r, "RCPT TO")
}

// noteFailed counts n recipients of the transaction that failed.
func (t *Txn) noteFailed(class string, n int) {
	if t.d.Metrics != nil {
		t.d.Metrics.Failed(destination(t.plan), class, n)
	}
}

// Data sends the body and returns the MX's reply to it, then releases the
// connection. eightBit is what the body turned out to hold.
func (t *Txn) Data(ctx context.Context, body Body, eightBit bool) *smtp.SMTPError {
	req := Request{Plan: t.plan, Envelope: t.env, To: t.to, Body: body}
	c := t.c
	var reply *smtp.SMTPError
	class := metrics.FailureOther
	switch {
	case t.broken:
		reply, class = t.lost(), metrics.FailureNetwork
	case t.c.MaxSize() > 0 && body.Size() > t.c.MaxSize():
		// The body grew since MAIL (encryption): RFC 1870 §6.
		t.Close()
		reply = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: fmt.Sprintf("%s: message of %d bytes exceeds the SIZE limit of %d", t.failure().where(), body.Size(), t.c.MaxSize())}
	case eightBit && !t.env.EightBit && !t.c.Has("8BITMIME"):
		t.Close()
		reply = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 3}, Message: t.failure().where() + ": 8-bit message but 8BITMIME not offered"}
	default:
		stop := t.bind(ctx)
		reply = t.data(body)
		stop()
		class = metrics.FailureRefused
		if t.broken {
			class = metrics.FailureNetwork
		}
		t.release()
	}
	res := Result{Replies: make([]*smtp.SMTPError, len(t.to))}
	classes := make([]string, len(t.to))
	for i := range res.Replies {
		res.Replies[i], classes[i] = reply, class
	}
	t.d.logAttempt(req, t.mx, t.key.addr, c, reply, t.start, false)
	if c != nil {
		t.d.noteOutcome(t.plan, body, c, res.Replies, classes)
	}
	t.d.Metrics.DeliveryFinished(t.d.now().Sub(t.start), codes(res))
	return reply
}

// data sends the body: as one BDAT chunk when the MX offers CHUNKING
// (RFC 3030 §2), one round trip instead of DATA's two.
func (t *Txn) data(body Body) *smtp.SMTPError {
	r, step, err := t.c.data(body)
	if step == smtpconn.StepDATA && err == nil {
		return said(t.failure(), r, step) // DATA refused
	}
	return t.ended(r, err, step)
}

// ended turns the final reply to a message into the upstream reply.
func (t *Txn) ended(r *smtp.SMTPError, err error, step string) *smtp.SMTPError {
	if err != nil {
		t.broken = true
		return t.lost()
	}
	if r.Code/100 == 2 {
		t.d.notePlaintext(t.plan, t.mx.Host, t.c)
	}
	return said(t.failure(), r, step)
}

// resetTimeout bounds the RSET that abandons a transaction: the
// transaction's own budget may be spent by then (an upstream client that
// held it open), and the RSET still deserves a chance.
const resetTimeout = 10 * time.Second

// Close abandons the transaction (RSET, under a deadline of its own) and
// releases the connection.
func (t *Txn) Close() {
	if t.c == nil {
		return
	}
	if !t.broken {
		t.c.Net.SetDeadline(time.Now().Add(resetTimeout))
		if t.c.reset() != nil {
			t.broken = true
		}
	}
	t.release()
}

// release pools the connection, or closes a broken one with QUIT and a
// TLS close_notify under a fresh short deadline, as far as it will go.
func (t *Txn) release() {
	if t.c == nil {
		return
	}
	if t.broken {
		t.c.Quit()
	} else {
		t.d.Pool.put(t.key, t.c)
	}
	t.c = nil
}

func (t *Txn) failure() *failure { return &failure{host: t.mx.Host, addr: t.key.addr} }

func (t *Txn) lost() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: t.failure().where() + ": connection lost"}
}
