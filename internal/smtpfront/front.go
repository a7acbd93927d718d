package smtpfront

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// Front is what an SMTP front keeps of its connections: admission within
// limits, the connections open, and the drain at shutdown. Safe for
// concurrent use.
type Front struct {
	Hostname  string
	Admission *Admission
	Log       *zap.Logger
	// Wrap makes the Conn of an admitted connection; release gives its
	// slot back and must be called when it closes (NewConn does).
	Wrap func(raw net.Conn, release func()) *Conn

	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*Conn]struct{}
}

// Listen wraps l: it admits connections within Admission and none while
// draining, answering the others 421 (RFC 5321 §3.8: a server may refuse
// a connection with 421) before go-smtp sees them.
func (f *Front) Listen(l net.Listener) net.Listener { return &listener{Listener: l, f: f} }

type listener struct {
	net.Listener
	f *Front
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.f.admit(raw); c != nil {
			return c, nil
		}
	}
}

func (f *Front) admit(raw net.Conn) *Conn {
	if f.draining.Load() {
		Refuse(raw, ShuttingDown(f.Hostname))
		return nil
	}
	a := RemoteAddr(raw)
	if !f.Admission.Take(a) {
		f.Log.Warn("too many connections", zap.String("client", raw.RemoteAddr().String()))
		Refuse(raw, TooManyConnections(f.Hostname))
		return nil
	}
	var c *Conn
	c = f.Wrap(raw, func() {
		f.Admission.Release(a)
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	})
	f.mu.Lock()
	if f.conns == nil {
		f.conns = map[*Conn]struct{}{}
	}
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	return c
}

// Sessions is the number of connections open.
func (f *Front) Sessions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Draining reports whether Drain has begun.
func (f *Front) Draining() bool { return f.draining.Load() }

// Begin marks c inside a transaction, unless the front is draining
// (then false: refuse the transaction). The order of the two atomics
// makes sure Drain either sees c busy or Begin sees the drain.
func (f *Front) Begin(c *Conn) bool {
	c.busy.Store(true)
	if f.draining.Load() {
		c.busy.Store(false)
		return false
	}
	return true
}

// End marks c between transactions and reports whether the front is
// draining: the session should then end (HangUp with ShuttingDown).
func (f *Front) End(c *Conn) bool {
	c.busy.Store(false)
	return f.draining.Load()
}

// Drain stops admitting (new connections get 421), says 421 4.3.2 to
// the sessions between transactions and closes them, lets transactions
// in flight finish until ctx ends (each session ends with 421 at its
// end: End), then closes what is left. servers are the go-smtp servers
// serving the front's listeners.
func (f *Front) Drain(ctx context.Context, servers ...*smtp.Server) error {
	f.draining.Store(true)
	f.mu.Lock()
	open := make([]*Conn, 0, len(f.conns))
	for c := range f.conns {
		open = append(open, c)
	}
	f.mu.Unlock()
	for _, c := range open {
		if !c.busy.Load() {
			c.HangUp(ShuttingDown(f.Hostname))
		}
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.Shutdown(ctx) }()
	}
	var err error
	for range servers {
		if e := <-errc; e != nil && !errors.Is(e, smtp.ErrServerClosed) {
			err = e
		}
	}
	if err != nil {
		// go-smtp's Close does nothing once Shutdown has begun: cut
		// the connections still open here (Close is idempotent).
		for _, c := range open {
			c.Close()
		}
	}
	return err
}

// Serve runs srv on l through the front, and returns nil once the drain
// closed it.
func (f *Front) Serve(srv *smtp.Server, l net.Listener) error {
	err := srv.Serve(f.Listen(l))
	if errors.Is(err, smtp.ErrServerClosed) || f.draining.Load() {
		return nil
	}
	return err
}
