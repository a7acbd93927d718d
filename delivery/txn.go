package delivery

import (
	"context"
	"time"

	"github.com/emersion/go-smtp"

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
	to       []string
	accepted int
	start    time.Time
	broken   bool
}

// Open finds an MX of plan that passes its requirement and accepts MAIL
// FROM. The reply is nil on success.
func (d *Deliverer) Open(ctx context.Context, plan policy.Plan, env Envelope) (*Txn, *smtp.SMTPError) {
	var t *Txn
	fail := d.tryEach(ctx, plan, func(mx policy.MX, addr string) *failure {
		var f *failure
		t, f = d.open(ctx, plan, env, mx, addr)
		return f
	})
	return t, fail
}

func (d *Deliverer) open(ctx context.Context, plan policy.Plan, env Envelope, mx policy.MX, addr string) (*Txn, *failure) {
	t0 := d.now()
	req := Request{Plan: plan, Envelope: env}
	c, key, reused, f := d.acquire(ctx, mx, addr)
	if f != nil {
		d.logAttempt(req, mx, addr, nil, f.reply(), t0, false)
		return nil, f
	}
	if f := acceptable(env, c, mx.Host, addr); f != nil {
		d.logAttempt(req, mx, addr, c, f.reply(), t0, reused)
		d.Pool.put(key, c)
		return nil, f
	}
	t := &Txn{d: d, c: c, key: key, mx: mx, plan: plan, env: env, start: t0}
	stop := t.bind(ctx)
	r, err := c.cmd("MAIL FROM:<%s>%s", env.From, params(env, c))
	stop()
	_, jf := judge(req, mx.Host, addr, outcome{mail: r}, err)
	if jf != nil {
		d.logAttempt(req, mx, addr, c, jf.reply(), t0, reused)
		if err != nil {
			c.conn.Close()
		} else {
			d.Pool.put(key, c)
		}
		return nil, jf
	}
	return t, nil
}

// bind makes ctx's end interrupt the connection.
func (t *Txn) bind(ctx context.Context) func() bool {
	if dl, ok := ctx.Deadline(); ok {
		t.c.conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { t.c.conn.SetDeadline(time.Unix(1, 0)) })
}

// MX names the host the transaction runs on.
func (t *Txn) MX() string { return t.mx.Host }

// Rcpt sends RCPT TO and returns the MX's reply, naming it.
func (t *Txn) Rcpt(ctx context.Context, to string) *smtp.SMTPError {
	if t.broken {
		return t.lost()
	}
	defer t.bind(ctx)()
	r, err := t.c.cmd("RCPT TO:<%s>", to)
	if err != nil {
		t.broken = true
		return t.lost()
	}
	if r.Code/100 == 2 {
		t.accepted++
		t.to = append(t.to, to)
	}
	return said(t.failure(), r, "RCPT TO")
}

// Data sends the body and returns the MX's reply to it, then releases the
// connection. eightBit is what the body turned out to hold.
func (t *Txn) Data(ctx context.Context, body Body, eightBit bool) *smtp.SMTPError {
	req := Request{Plan: t.plan, Envelope: t.env, To: t.to, Body: body}
	c := t.c
	var reply *smtp.SMTPError
	switch {
	case t.broken:
		reply = t.lost()
	case eightBit && !t.env.EightBit && !t.c.has("8BITMIME"):
		t.Close()
		reply = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 3}, Message: t.failure().where() + ": 8-bit message but 8BITMIME not offered"}
	default:
		stop := t.bind(ctx)
		reply = t.data(body)
		stop()
		t.release()
	}
	res := Result{Replies: make([]*smtp.SMTPError, len(t.to))}
	for i := range res.Replies {
		res.Replies[i] = reply
	}
	t.d.logAttempt(req, t.mx, t.key.addr, c, reply, t.start, false)
	t.d.Metrics.observe(t.plan.Domain, res, t.d.now().Sub(t.start))
	return reply
}

func (t *Txn) data(body Body) *smtp.SMTPError {
	r, err := t.c.cmd("DATA")
	if err != nil {
		t.broken = true
		return t.lost()
	}
	if r.Code != 354 {
		return said(t.failure(), r, "DATA")
	}
	r, err = t.c.body(body.Reader())
	if err != nil {
		t.broken = true
		return t.lost()
	}
	if r.Code/100 == 2 {
		t.d.notePlaintext(t.plan.Domain, t.mx.Host, t.c)
	}
	return said(t.failure(), r, "end of DATA")
}

// Close abandons the transaction (RSET) and releases the connection.
func (t *Txn) Close() {
	if t.c == nil {
		return
	}
	if !t.broken && t.c.reset() != nil {
		t.broken = true
	}
	t.release()
}

func (t *Txn) release() {
	if t.c == nil {
		return
	}
	if t.broken {
		t.c.conn.Close()
	} else {
		t.d.Pool.put(t.key, t.c)
	}
	t.c = nil
}

func (t *Txn) failure() *failure { return &failure{host: t.mx.Host, addr: t.key.addr} }

func (t *Txn) lost() *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: t.failure().where() + ": connection lost"}
}
