package relay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/message"
	"github.com/caliop/relay/policy"
)

// copyBufs holds the buffers bodies are read through, so that a message
// costs no 32 KiB allocation.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// spooled is a message as received: its spool, and its header section
// parsed once, for the TLS-Required check, the PGP decision and the
// encryption.
type spooled struct {
	*message.Spool
	header message.Header
}

// spool reads the body into a Spool behind a Received header, with every
// bare CR and LF made CRLF, and parses its header section.
func (sess *session) spool(r io.Reader) (*spooled, error) {
	o := sess.s.opts
	sp := message.NewSpool(o.SpoolDir, o.MemoryBuffer)
	if _, err := io.WriteString(sp, sess.received()); err != nil {
		sp.Close()
		return nil, smtpfront.LocalError(err)
	}
	w := message.NewCRLFWriter(sp)
	w.LineLimit = o.MaxLine
	buf := copyBufs.Get().(*[]byte)
	_, err := io.CopyBuffer(w, r, *buf)
	copyBufs.Put(buf)
	if err != nil {
		sp.Close()
		var se *smtp.SMTPError
		switch {
		case errors.As(err, &se):
			return nil, se // 552 message too large
		case errors.Is(err, message.ErrLineTooLong), errors.Is(err, smtp.ErrTooLongLine):
			// go-smtp reads the rest of the body: the session goes on.
			return nil, errLineTooLong(o.MaxLine)
		}
		return nil, smtpfront.LocalError(err)
	}
	if err := w.Close(); err != nil {
		sp.Close()
		return nil, smtpfront.LocalError(err)
	}
	br := headerReaders.Get().(*bufio.Reader)
	br.Reset(sp.Reader())
	h, _ := message.ReadHeader(br) // h.Err kept
	br.Reset(nil)
	headerReaders.Put(br)
	return &spooled{Spool: sp, header: h}, nil
}

// headerReaders are the buffers spool reads headers through, one per
// message otherwise.
var headerReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

// Data delivers an SMTP transaction on the downstream transaction opened
// at RCPT; the reply is the destination's own.
func (sess *session) Data(r io.Reader) error {
	sp, err := sess.spool(r)
	if err != nil {
		return err
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), sess.s.opts.DeliveryTimeout)
	defer cancel()
	var keys []*openpgp.Entity
	for _, r := range sess.rcpt {
		if r.key != nil {
			keys = append(keys, r.key)
		}
	}
	body, eightBit, done, err := sess.bodyFor(sp, keys)
	if err != nil {
		sess.txn.Close()
		sess.txn = nil
		return err
	}
	defer done()
	reply := sess.txn.Data(ctx, body, eightBit)
	sess.txn = nil
	sess.logMessage(sess.route, len(sess.rcpt), sp.Size(), reply)
	return sess.withID(reply)
}

// logMessage writes the one line per message and destination: info when
// delivered, warn with the sender and the reply when deferred or
// refused. id is in it, and in the reply the MTA logs (withID).
func (sess *session) logMessage(domain string, rcpts int, size int64, reply *smtp.SMTPError) {
	fields := []zap.Field{zap.String("id", sess.id), zap.String("domain", domain), zap.Int("rcpts", rcpts), zap.Int64("size", size), zap.Int("code", reply.Code)}
	if f := sess.forwarded(); f.Ident != "" || f.Addr != "" {
		// XFORWARD: the MTA's queue id and the original client.
		fields = append(fields, zap.String("queue_id", f.Ident), zap.String("orig_client", f.Addr), zap.String("orig_helo", f.Helo))
	}
	if reply.Code/100 == 2 {
		sess.log.Info("message", fields...)
		return
	}
	what := "message deferred"
	if reply.Code/100 == 5 {
		what = "message refused"
	}
	sess.log.Warn(what, append(fields, zap.String("from", sess.from.String()), zap.String("reply", reply.Message))...)
}

// forwarded is what the MTA said with XFORWARD, if anything.
func (sess *session) forwarded() Forwarded {
	if sess.rules == nil {
		return Forwarded{}
	}
	return sess.rules.Forwarded()
}

// withID names Caliop's transaction id in a final reply ("[caliop ID]"),
// so that the MTA's log line leads to Caliop's, which all carry the id.
func (sess *session) withID(r *smtp.SMTPError) *smtp.SMTPError {
	if r == nil || sess.id == "" {
		return r
	}
	c := *r
	c.Message += " [caliop " + sess.id + "]"
	return &c
}

// LMTPData delivers every destination domain of the transaction in
// parallel and reports one reply per recipient (RFC 2033 §4.2).
func (sess *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	sp, err := sess.spool(r)
	if err != nil {
		return err
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), sess.s.opts.DeliveryTimeout)
	defer cancel()

	routes := byRoute(sess.rcpt)
	sem := make(chan struct{}, sess.s.opts.Parallel)
	var wg sync.WaitGroup
	for _, rt := range routes {
		wg.Add(1)
		sem <- struct{}{}
		sess.s.routes.Go(func() {
			defer func() { <-sem; wg.Done() }()
			replies := sess.deliverRoute(ctx, rt, sp)
			for i, raw := range rt.raws {
				for range rt.count[i] {
					status.SetStatus(raw, replies[i])
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// deliverRoute plans and delivers one destination domain; one reply per
// distinct address of the route.
func (sess *session) deliverRoute(ctx context.Context, rt route, sp *spooled) []*smtp.SMTPError {
	plan, err := sess.plan(ctx, rt.domain, sp)
	if err != nil {
		sess.log.Info("no route", zap.String("id", sess.id), zap.String("domain", rt.domain), zap.Error(err))
		sess.s.noteRefused(rt.domain, planFailure(err), len(rt.addrs))
		reply := planReply(rt.domain, err)
		out := make([]*smtp.SMTPError, len(rt.addrs))
		for i := range out {
			out[i] = reply
		}
		return out
	}
	body, eightBit, done, err := sess.bodyFor(sp, rt.keys)
	if err != nil {
		return allReplies(len(rt.addrs), err.(*smtp.SMTPError))
	}
	defer done()
	req := delivery.Request{
		Plan: plan,
		Envelope: delivery.Envelope{
			From: sess.from, EightBit: eightBit, UTF8: sess.opts.UTF8, Size: body.Size(),
			RequireTLS: sess.opts.RequireTLS,
		},
		To:   rt.addrs,
		Body: body,
	}
	res := sess.s.opts.Deliverer.Deliver(ctx, req)
	if allTemporary(res.Replies) {
		if p, ok := sess.replan(ctx, plan); ok {
			req.Plan = p
			res = sess.s.opts.Deliverer.Deliver(ctx, req)
		}
	}
	sess.logMessage(rt.domain, len(rt.addrs), sp.Size(), res.Replies[0])
	out := make([]*smtp.SMTPError, len(res.Replies))
	for i, r := range res.Replies {
		out[i] = sess.withID(r)
	}
	return out
}

// plan makes the plan for domain; for a message marked "TLS-Required: No"
// (RFC 8689 §5), when the operator allows it and REQUIRETLS was not
// given (RFC 8689 §5: REQUIRETLS wins), without the published policies.
func (sess *session) plan(ctx context.Context, domain string, sp *spooled) (policy.Plan, error) {
	if rp, ok := sess.s.opts.Planner.(RelaxedPlanner); ok && sess.s.opts.HonourTLSRequiredNo && !sess.opts.RequireTLS && sp.header.TLSRequiredNo() {
		sess.log.Info("TLS-Required: No honoured", zap.String("id", sess.id), zap.String("domain", domain))
		return rp.PlanWithoutPolicies(ctx, domain)
	}
	return sess.s.planFor(ctx, domain)
}

// allTemporary reports whether every reply is a 4xx: nothing was
// delivered, so trying again cannot duplicate.
func allTemporary(replies []*smtp.SMTPError) bool {
	for _, r := range replies {
		if r.Code/100 != 4 {
			return false
		}
	}
	return true
}

// route is the distinct recipients of one domain, in RCPT order, with how
// many times each was given.
type route struct {
	domain string
	raws   []string          // as the MTA gave them (LMTP reply keys)
	addrs  []address.Address // the same, parsed
	count  []int
	keys   []*openpgp.Entity // encrypted route: the recipients' keys
}

func byRoute(rcpts []recipient) []route {
	var out []route
	index := map[string]int{}
	for _, r := range rcpts {
		i, ok := index[r.routeKey()]
		if !ok {
			i = len(out)
			index[r.routeKey()] = i
			out = append(out, route{domain: r.domain()})
		}
		rt := &out[i]
		j := 0
		for j < len(rt.raws) && rt.raws[j] != r.raw {
			j++
		}
		if j == len(rt.raws) {
			rt.raws = append(rt.raws, r.raw)
			rt.addrs = append(rt.addrs, r.addr)
			rt.count = append(rt.count, 0)
			if r.key != nil {
				rt.keys = append(rt.keys, r.key)
			}
		}
		rt.count[j]++
	}
	return out
}

func allReplies(n int, r *smtp.SMTPError) []*smtp.SMTPError {
	out := make([]*smtp.SMTPError, n)
	for i := range out {
		out[i] = r
	}
	return out
}
