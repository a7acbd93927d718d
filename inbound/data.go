package inbound

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/message"
)

// Data spools the whole body, then sends it to the next hop and returns
// the next hop's reply to its end verbatim, 250 included (RFC 5321
// §4.1.1.4). Nothing reaches the next hop before the body is complete, so
// a slow or broken client costs it nothing.
func (sess *session) Data(r io.Reader) error {
	sess.hopMu.Lock()
	defer sess.hopMu.Unlock()
	t := sess.txn
	sess.txn = nil
	h := sess.hop.Load()
	stop := h.keepAlive(sess.s.keepAlive)
	sp, err := sess.spool(r, t)
	alive := stop()
	if err != nil {
		return err
	}
	defer sp.Close()
	if h == nil || t == nil || t.rcpts == 0 || !alive {
		sess.dropHop("data", errors.New("next hop connection lost before DATA"))
		return errNextHop
	}
	reply, _, err := h.Data(sp.Reader(), sp.Size())
	if err != nil {
		sess.dropHop("data", err)
		return errNextHopLost
	}
	sess.log.Info("message", zap.String("id", t.id), zap.String("domain", t.domain), zap.Int("rcpts", t.rcpts),
		zap.Int64("size", sp.Size()), zap.Bool("tls", t.received.tls != nil), zap.Int("code", reply.Code))
	if reply.Code/100 == 3 {
		// A 354 to the end of the body, say: nothing sensible can
		// follow.
		sess.dropHop("data", reply)
		return errNextHopLost
	}
	if positive(reply) {
		return reply // go-smtp writes it as is: the next hop's words
	}
	return sess.passOn(reply)
}

// spool reads the body into a Spool behind the Received header, with
// every bare CR and LF made CRLF (message.CRLFWriter), under the limits
// of a pacer.
func (sess *session) spool(r io.Reader, t *txn) (*message.Spool, error) {
	o := sess.s.opts
	p := sess.s.newPacer(sess.c, r)
	defer p.stop()
	sp := message.NewSpool(o.SpoolDir, o.MemoryBuffer)
	if t != nil {
		if _, err := io.WriteString(sp, t.received.header(o.Hostname, t.id, o.Now())); err != nil {
			sp.Close()
			return nil, smtpfront.LocalError(err)
		}
	}
	w := message.NewCRLFWriter(sp)
	w.LineLimit = o.Limits.MaxLine
	_, err := io.Copy(w, p)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		sp.Close()
		return nil, sess.bodyError(p, err)
	}
	return sp, nil
}

// bodyError is the reply for a body that could not be spooled. A body
// not read to its end leaves no way back to reading commands: the
// session is closed after the reply.
func (sess *session) bodyError(p *pacer, err error) error {
	if tripped := p.tripped(); tripped != nil {
		return tripped // said and closed by the watchdog
	}
	if p.readErr == nil {
		if errors.Is(err, message.ErrLineTooLong) {
			return errBodyLineTooLong(sess.s.opts.Limits.MaxLine) // go-smtp reads the rest
		}
		return smtpfront.LocalError(err) // the spool failed; go-smtp reads the rest
	}
	var se *smtp.SMTPError
	if errors.As(p.readErr, &se) {
		return se // 552 too large: go-smtp reads the rest
	}
	reply := errDataBroken(sess.s.opts.Hostname)
	if errors.Is(p.readErr, smtp.ErrTooLongLine) {
		reply = errLineTooLong
	}
	sess.log.Info("message data broken", zap.Error(p.readErr))
	sess.c.HangUp(reply)
	return reply
}

// pacer reads the body for Data under Limits: no read may wait longer
// than CommandTimeout, and with MinDataRate each window must bring
// MinDataRate bytes a second. It measures what arrives on the connection,
// below go-smtp, whose reader returns only once its buffer is full. A
// watchdog enforces both, telling the client (451 4.4.2 data too slow, or
// 421 4.4.2 timeout) and closing the connection: alike with DATA and
// BDAT, and before a read deadline could make go-smtp say 554 in a BDAT
// chunk.
type pacer struct {
	r       io.Reader
	c       *clientConn
	trip    atomic.Pointer[smtp.SMTPError]
	readErr error // the reader's error, other than EOF
	quit    chan struct{}
	wg      sync.WaitGroup
}

func (s *Server) newPacer(c *clientConn, r io.Reader) *pacer {
	p := &pacer{r: r, c: c, quit: make(chan struct{})}
	c.Touch()
	p.wg.Add(1)
	go p.watch(s.opts.Hostname, s.opts.Limits, s.window)
	return p
}

func (p *pacer) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF {
		p.readErr = err
	}
	return n, err
}

// watch checks the client's pace until stop.
func (p *pacer) watch(host string, l Limits, window time.Duration) {
	defer p.wg.Done()
	tick := time.NewTicker(max(min(window, l.CommandTimeout)/4, time.Millisecond))
	defer tick.Stop()
	start, atStart := time.Now(), p.c.Received()
	for {
		select {
		case <-p.quit:
			return
		case now := <-tick.C:
			if now.Sub(p.c.LastRead()) > l.CommandTimeout {
				p.stopWith(errDataIdle(host))
				return
			}
			if l.MinDataRate <= 0 || now.Sub(start) < window {
				continue
			}
			n := p.c.Received()
			if float64(n-atStart) < float64(l.MinDataRate)*now.Sub(start).Seconds() {
				p.stopWith(errDataTooSlow(host))
				return
			}
			start, atStart = now, n
		}
	}
}

// stopWith tells the client r and closes the connection; the body's
// reader fails at once.
func (p *pacer) stopWith(r *smtp.SMTPError) {
	p.trip.Store(r)
	p.c.HangUp(r)
}

func (p *pacer) tripped() *smtp.SMTPError { return p.trip.Load() }

func (p *pacer) stop() {
	close(p.quit)
	p.wg.Wait()
}
