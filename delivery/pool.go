package delivery

import (
	"cmp"
	"sync"
	"time"
)

// poolKey identifies connections that may serve one another's messages:
// same address, same MX name (SNI, certificate name) and same requirement
// proved.
type poolKey struct {
	addr string
	host string
	req  string // policy.Requirement.Key
}

// Pool keeps idle downstream connections for a short time so that the
// next message to the same MX skips the TCP and TLS handshakes. A
// connection is reused after RSET and retired after MaxMessages.
type Pool struct {
	Idle        time.Duration
	MaxMessages int
	// MaxIdle bounds the idle connections held in all, whatever the
	// number of destinations: past it a connection is closed instead of
	// kept. DefaultMaxIdle if zero.
	MaxIdle int

	mu     sync.Mutex
	idle   map[poolKey][]*pooled
	n      int // idle connections held
	closed bool
}

// DefaultMaxIdle is Pool.MaxIdle's default: far above the MX hosts a
// relay talks to within an idle period, far below a file-descriptor
// limit.
const DefaultMaxIdle = 1000

type pooled struct {
	c     *client
	timer *time.Timer
}

// get returns an idle connection for k, bound to deadline, or nil. The
// connection owes an RSET before its next MAIL (client.owe).
func (p *Pool) get(k poolKey, deadline time.Time) *client {
	if p == nil {
		return nil
	}
	for {
		p.mu.Lock()
		list := p.idle[k]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		e := list[len(list)-1]
		p.idle[k] = list[:len(list)-1]
		if len(p.idle[k]) == 0 {
			delete(p.idle, k)
		}
		p.n--
		p.mu.Unlock()
		if !e.timer.Stop() {
			continue // the timer is closing it
		}
		e.c.Net.SetDeadline(deadline)
		e.c.Resume()
		if err := e.c.owe(); err != nil {
			e.c.Net.Close()
			continue
		}
		return e.c
	}
}

// put offers c for reuse; it is closed instead when the pool is off,
// closed, or c has carried MaxMessages.
func (p *Pool) put(k poolKey, c *client) {
	if p == nil || p.Idle <= 0 || p.MaxMessages > 0 && c.sent >= p.MaxMessages {
		c.Quit()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.n >= cmp.Or(p.MaxIdle, DefaultMaxIdle) {
		go c.Quit()
		return
	}
	if p.idle == nil {
		p.idle = map[poolKey][]*pooled{}
	}
	c.Net.SetDeadline(time.Time{})
	c.Release()
	e := &pooled{c: c}
	e.timer = time.AfterFunc(p.Idle, func() { p.expire(k, e) })
	p.idle[k] = append(p.idle[k], e)
	p.n++
}

func (p *Pool) expire(k poolKey, e *pooled) {
	p.mu.Lock()
	list := p.idle[k]
	for i, x := range list {
		if x == e {
			p.idle[k] = append(list[:i:i], list[i+1:]...)
			p.n--
			break
		}
	}
	if len(p.idle[k]) == 0 {
		delete(p.idle, k)
	}
	p.mu.Unlock()
	e.c.Quit()
}

// Close closes every idle connection and stops caching.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	all := p.idle
	p.idle, p.n = nil, 0
	p.mu.Unlock()
	for _, list := range all {
		for _, e := range list {
			if e.timer.Stop() {
				e.c.Quit()
			}
		}
	}
}

// Len is the number of idle connections held.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
