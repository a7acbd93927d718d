// Package delivery sends one message to the MX hosts of one destination
// domain under a policy.Plan: every address of every MX in turn, STARTTLS
// and the plan's certificate checks before MAIL FROM, never a weaker retry.
// Caliop holds no queue: Deliver returns one final reply per recipient and
// the MTA in front owns retries (DESIGN.md invariant 1).
package delivery

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/internal/smtpconn"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// AddrResolver finds the addresses of an MX host.
type AddrResolver interface {
	LookupIP(ctx context.Context, host string) ([]netip.Addr, resolver.Result, error)
}

// Body is a spooled message that can be read from the start any number of
// times, concurrently.
type Body interface {
	Reader() io.Reader
	Size() int64
}

// Envelope is what MAIL FROM says about a message.
type Envelope struct {
	From address.Address
	// EightBit is set when the body holds 8-bit bytes: the MX must offer
	// 8BITMIME (RFC 6152).
	EightBit bool
	// UTF8 is set when the MTA asked for SMTPUTF8 (RFC 6531): the MX must
	// offer it.
	UTF8 bool
	// Size is the message size in bytes, or the size the MTA announced.
	Size int64
	// RequireTLS is set when the MTA gave REQUIRETLS (RFC 8689): only
	// authenticated MX hosts that offer REQUIRETLS may take the message.
	RequireTLS bool
}

// Request is one message for the recipients of one destination domain.
type Request struct {
	Plan policy.Plan
	Envelope
	To   []address.Address
	Body Body
}

// Result holds one final reply per recipient of the Request, in order.
// Delivered recipients have code 250.
type Result struct {
	Replies []*smtp.SMTPError
}

// Deliverer delivers messages. Every outside dependency is a field.
type Deliverer struct {
	Hostname       string // EHLO name
	DNS            AddrResolver
	Dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	Port           int            // destination port, 25
	Roots          *x509.CertPool // WebPKI roots; nil means the system pool
	ConnectTimeout time.Duration
	// GreetingTimeout bounds the greeting, EHLO, STARTTLS and TLS
	// handshake of one address, so that a server that accepts and never
	// greets (a tarpit) cannot spend the whole delivery budget; 0: 30 s.
	GreetingTimeout time.Duration
	Pool            *Pool // nil disables connection reuse
	Log             *zap.Logger
	Metrics         *metrics.Metrics // nil disables metrics
	Report          tlsrpt.Recorder  // TLS-RPT outcomes of new sessions; nil: none
	Learn           Learner          // what new sessions proved, for learned policies; nil: none
	Now             func() time.Time
}

// Deliver tries the plan's MXs in order until one gives final replies, with
// the whole transaction pipelined where the MX offers it. It returns within
// ctx's deadline; failures are 4xx unless an MX said 5xx or no MX could
// ever take the message as it is.
func (d *Deliverer) Deliver(ctx context.Context, req Request) Result {
	start := d.now()
	var res Result
	fail, class := d.tryEach(ctx, req.Plan, req.Envelope, func(mx policy.MX, addr string) *failure {
		r, f := d.attempt(ctx, req, mx, addr)
		res = r
		return f
	})
	if fail != nil {
		res = allReplies(len(req.To), fail)
		if d.Metrics != nil {
			d.Metrics.Failed(destination(req.Plan), class, len(req.To))
		}
	}
	d.Metrics.DeliveryFinished(d.now().Sub(start), codes(res))
	return res
}

// tryEach calls try on every address of every MX of plan, in order, until
// try succeeds (nil) or fails finally. It returns the reply to give when no
// address succeeded, or nil, and the failure class of that reply for
// metrics (failure.class).
//
// Hosts the plan found unusable count as tried. Under REQUIRETLS
// (RFC 8689 §4.2.1) a host the plan does not authenticate is skipped with
// a permanent 5.7.30.
func (d *Deliverer) tryEach(ctx context.Context, plan policy.Plan, env Envelope, try func(policy.MX, string) *failure) (*smtp.SMTPError, string) {
	var tried []failure
	for _, u := range plan.Unusable {
		tried = append(tried, failure{host: u.Host, kind: failPolicy, result: u.Result, err: u.Err})
	}
	for _, mx := range plan.MXs {
		if env.RequireTLS && !plan.Authenticated(mx) {
			tried = append(tried, failure{host: mx.Host, kind: failMessage, err: &smtp.SMTPError{
				Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 30},
				Message: "REQUIRETLS support required: " + mx.Host + " is not authenticated by DANE or MTA-STS (required " + mx.Require.String() + ")"}})
			continue
		}
		addrs, _, err := d.DNS.LookupIP(ctx, mx.Host)
		if err == nil && len(addrs) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			tried = append(tried, failure{host: mx.Host, kind: failDNS, err: err})
			continue
		}
		for _, ip := range addrs {
			if ctx.Err() != nil {
				return timeoutReply(tried), metrics.FailureNetwork
			}
			f := try(mx, net.JoinHostPort(ip.String(), strconv.Itoa(d.Port)))
			if f == nil {
				return nil, ""
			}
			tried = append(tried, *f)
			if f.final {
				return f.reply(), f.class()
			}
		}
	}
	if ctx.Err() != nil {
		return timeoutReply(tried), metrics.FailureNetwork
	}
	class := metrics.FailureOther
	if i, _ := mostTelling(tried); i >= 0 {
		class = tried[i].class()
	}
	return underPolicy(plan, summarise(tried)), class
}

// underPolicy names the enforced MTA-STS policy, or the learned one
// under enforce, in a policy failure (4.7.x), so that the MTA's log says
// why no MX would do.
func underPolicy(plan policy.Plan, r *smtp.SMTPError) *smtp.SMTPError {
	if r.EnhancedCode[1] != 7 {
		return r
	}
	if !plan.Enforced() {
		if l := plan.Learned; l != nil && l.Enforce {
			r.Message = truncate(l.String()+": "+r.Message, 480)
		}
		return r
	}
	prefix := "MTA-STS policy " + plan.STS.ID + " of " + plan.Domain + " in force"
	if len(plan.STS.Excluded) > 0 {
		prefix += " (not admitted: " + strings.Join(plan.STS.Excluded, ", ") + ")"
	}
	r.Message = truncate(prefix+": "+r.Message, 480)
	return r
}

// attempt runs the transaction on one address of one MX. A nil failure
// means the Result is final.
func (d *Deliverer) attempt(ctx context.Context, req Request, mx policy.MX, addr string) (Result, *failure) {
	for fresh := false; ; fresh = true {
		res, f, stale := d.attemptOn(ctx, req, mx, addr, fresh)
		if !stale {
			return res, f
		}
	}
}

// attemptOn is attempt on a pooled connection if there is one (unless
// fresh), else a new one. stale reports a pooled connection that turned
// out dead before anything was sent: the caller tries a new one.
func (d *Deliverer) attemptOn(ctx context.Context, req Request, mx policy.MX, addr string, fresh bool) (_ Result, _ *failure, stale bool) {
	t0 := d.now()
	c, key, reused, f := d.acquire(ctx, req.Plan, mx, addr, fresh)
	if f != nil {
		d.logAttempt(req, mx, addr, nil, f.reply(), t0, false)
		return Result{}, f, false
	}
	stop := context.AfterFunc(ctx, func() { c.Net.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	params, f := mailParams(req.Envelope, c, mx.Host, addr)
	if f != nil {
		d.logAttempt(req, mx, addr, c, f.reply(), t0, reused)
		d.Pool.put(key, c)
		return Result{}, f, false
	}
	out, err := c.send(transaction{from: req.From, params: params, to: req.To, body: req.Body.Reader(), size: req.Body.Size()})
	if errors.Is(err, errStale) {
		c.Net.Close()
		return Result{}, nil, true
	}
	res, classes, f := judge(req, mx.Host, addr, out, err)
	var last *smtp.SMTPError
	if f != nil {
		last = f.reply()
	} else {
		last = firstFinal(res)
	}
	d.logAttempt(req, mx, addr, c, last, t0, reused)
	if err != nil {
		c.Net.Close()
	} else {
		d.Pool.put(key, c)
	}
	if f == nil {
		d.noteOutcome(req.Plan, req.Body, c, res.Replies, classes)
		if firstFinal(res).Code/100 == 2 {
			d.notePlaintext(req.Plan, mx.Host, c)
		}
	}
	return res, f, false
}

// acquire takes an idle connection from the pool or makes a new one that
// meets mx.Require; fresh skips the pool. reused reports a pooled one. A
// new connection's outcome is reported for TLS-RPT.
func (d *Deliverer) acquire(ctx context.Context, plan policy.Plan, mx policy.MX, addr string, fresh bool) (c *client, key poolKey, reused bool, f *failure) {
	key = poolKey{addr: addr, host: mx.Host, req: mx.Require.Key()}
	dl, _ := ctx.Deadline()
	if !fresh {
		if c := d.Pool.get(key, dl); c != nil {
			return c, key, true, nil
		}
	}
	c, err := d.connect(ctx, mx.Host, addr, mx.Require)
	d.report(plan, mx, addr, c, err)
	d.learn(plan, mx, c, err)
	if err != nil {
		f := connectFailure(mx.Host, addr, err)
		return nil, key, false, &f
	}
	d.noteSession(plan, mx, c)
	return c, key, false, nil
}

// mailParams are the message's MAIL parameters on c, or the failure
// when the MX lacks what the message needs (8BITMIME, SMTPUTF8,
// REQUIRETLS, SIZE): permanent for this MX only.
func mailParams(env Envelope, c *client, host, addr string) (string, *failure) {
	m := smtpconn.Message{Size: env.Size, UTF8: env.UTF8, RequireTLS: env.RequireTLS}
	if env.EightBit {
		m.Body = string(smtp.Body8BitMIME)
	}
	p, refused := c.MailParams(m)
	if refused != nil {
		return "", &failure{host: host, addr: addr, kind: failMessage, err: refused}
	}
	return p, nil
}

func allReplies(n int, r *smtp.SMTPError) Result {
	res := Result{Replies: make([]*smtp.SMTPError, n)}
	for i := range res.Replies {
		res.Replies[i] = r
	}
	return res
}

func firstFinal(res Result) *smtp.SMTPError {
	for _, r := range res.Replies {
		if r.Code == 250 {
			return r
		}
	}
	if len(res.Replies) > 0 {
		return res.Replies[0]
	}
	return nil
}

// notePlaintext logs and counts a delivery made without TLS, which only a
// level none override allows (DESIGN.md invariant 2).
func (d *Deliverer) notePlaintext(plan policy.Plan, host string, c *client) {
	if c.tls != nil {
		return
	}
	if d.Metrics != nil {
		d.Metrics.Plaintext(destination(plan))
	}
	d.log().Warn("plaintext delivery", zap.String("domain", plan.Domain), zap.String("mx", host), zap.String("reason", "override level none"))
}

func (d *Deliverer) log() *zap.Logger {
	if d.Log == nil {
		return zap.NewNop()
	}
	return d.Log
}
