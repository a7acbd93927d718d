package relay

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// AuthLimits bound password guessing over SMTP AUTH. A zero field takes
// its default.
type AuthLimits struct {
	// Free is how many failures on a connection are answered at once;
	// each later one waits Delay, doubled per failure. Default 3.
	Free int
	// PerConnection is how many failures a connection may have: the
	// next one ends it with 421 4.7.0. Default 5.
	PerConnection int
	// PerAddress is how many failures a client address (an IPv6 /64)
	// may have within Window; over it, AUTH gets 454 4.7.0 before any
	// password is checked. Default 10.
	PerAddress int
	Window     time.Duration // default 10 minutes
	Delay      time.Duration // default 1 second
}

func (l AuthLimits) withDefaults() AuthLimits {
	orDefault(&l.Free, 3)
	orDefault(&l.PerConnection, 5)
	orDefault(&l.PerAddress, 10)
	orDefault(&l.Window, 10*time.Minute)
	orDefault(&l.Delay, time.Second)
	return l
}

// delay is how long the failure numbered n (from 1) on a connection waits
// before its reply: nothing for the first Free, then Delay, 2×Delay, ...
// (capped at 16×Delay).
func (l AuthLimits) delay(n int) time.Duration {
	if n <= l.Free {
		return 0
	}
	return l.Delay << min(n-l.Free-1, 4)
}

// orDefault sets a zero or negative *v to d.
func orDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// maxTracked bounds the addresses the failure table holds; past it,
// expired entries are swept, and if none expired the oldest go.
const maxTracked = 1 << 16

// failures counts AUTH failures per client address over a fixed window.
type failures struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	now    func() time.Time
	by     map[netip.Prefix]*failureWindow
}

type failureWindow struct {
	start time.Time
	n     int
}

func newFailures(l AuthLimits, now func() time.Time) *failures {
	return &failures{max: l.PerAddress, window: l.Window, now: now, by: map[netip.Prefix]*failureWindow{}}
}

// key is the client's address, or its /64 for IPv6: one host has a /64.
func failureKey(a netip.Addr) netip.Prefix {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a.Unmap(), 32)
}

// blocked reports whether a is over its limit in the current window.
func (f *failures) blocked(a netip.Addr) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.by[failureKey(a)]
	return w != nil && f.now().Sub(w.start) < f.window && w.n >= f.max
}

// add counts one failure of a.
func (f *failures) add(a netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now, k := f.now(), failureKey(a)
	w := f.by[k]
	if w == nil || now.Sub(w.start) >= f.window {
		if len(f.by) >= maxTracked {
			f.sweep(now)
		}
		w = &failureWindow{start: now}
		f.by[k] = w
	}
	w.n++
}

// sweep drops expired windows, and when none had expired, the oldest
// half of the table.
func (f *failures) sweep(now time.Time) {
	for k, w := range f.by {
		if now.Sub(w.start) >= f.window {
			delete(f.by, k)
		}
	}
	if len(f.by) < maxTracked {
		return
	}
	cut := now.Add(-f.window / 2)
	for k, w := range f.by {
		if w.start.Before(cut) {
			delete(f.by, k)
		}
	}
}

// dummyHash is a bcrypt hash of nothing anyone types, at the cost of the
// configured hashes, checked for an unknown user so that an unknown user
// costs as much time as a known one (no user enumeration by timing).
func dummyHash(users map[string]string) []byte {
	cost := 0
	for _, h := range users {
		if c, err := bcrypt.Cost([]byte(h)); err == nil {
			cost = max(cost, c)
		}
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte("caliop: no such user"), cost)
	if err != nil {
		return nil
	}
	return h
}
