package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// socket is one listening TCP socket. It is bound once and kept across
// reloads as long as some service listens on its address: a reload hands
// it to the new generation's server instead of closing and binding it
// again, so that no connection is refused meanwhile. Its one accept loop
// gives each connection to the server in force at that moment.
type socket struct {
	addr string // as configured (the key across reloads)
	l    net.Listener

	// mu is held while a connection is handed over, so that once swap
	// returns no connection goes to the previous server.
	mu  sync.Mutex
	cur *handoff

	closed atomic.Bool
}

// listenConfig binds without TCP keep-alive on accepted connections:
// SMTP and HTTP have their own idle timeouts, and the four setsockopt
// calls per connection were an eighth of the relay's system calls per
// message on connections that carry one message.
var listenConfig = net.ListenConfig{KeepAlive: -1}

// listen binds addr.
func listen(addr string) (*socket, error) {
	l, err := listenConfig.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &socket{addr: addr, l: l}, nil
}

// swap makes h the server that receives the next connections.
func (s *socket) swap(h *handoff) {
	s.mu.Lock()
	s.cur = h
	s.mu.Unlock()
}

// close stops accepting; connections already handed over go on.
func (s *socket) close() {
	if s.closed.CompareAndSwap(false, true) {
		s.l.Close()
	}
}

// run accepts until close and returns nil then, or the error that stops
// accepting. Temporary errors (no file descriptor left) are retried as
// net/http and go-smtp do.
func (s *socket) run(log *zap.Logger) error {
	var delay time.Duration
	for {
		c, err := s.l.Accept()
		if err != nil {
			if s.closed.Load() {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("accept failed", zap.String("addr", s.addr), zap.Error(err), zap.Duration("retry_in", delay))
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		s.handOver(c)
	}
}

// handOver gives c to the current server, or closes it if that server
// stopped (the process is shutting down).
func (s *socket) handOver(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.cur
	if h == nil || !h.give(c) {
		c.Close()
	}
}

// handoff is the net.Listener one generation's server accepts from: the
// connections its socket hands over. Closing it (the server's Shutdown
// does) leaves the socket open for the next generation.
type handoff struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(addr net.Addr) *handoff {
	return &handoff{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// give hands c to the server's Accept; false if the handoff is closed.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, fmt.Errorf("accept %s: %w", h.addr, net.ErrClosed)
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }
