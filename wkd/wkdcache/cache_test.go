package wkdcache

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
)

// fakeWKD answers from a map and counts lookups.
type fakeWKD struct {
	mu    sync.Mutex
	key   map[string]*openpgp.Entity
	err   map[string]error
	calls map[string]int
}

func (f *fakeWKD) Lookup(_ context.Context, address string) (wkd.Lookup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[address]++
	if err := f.err[address]; err != nil {
		return wkd.Lookup{}, err
	}
	k := f.key[address]
	if k == nil {
		return wkd.Lookup{}, fmt.Errorf("%w: 404", wkd.ErrNoKey)
	}
	return wkd.Lookup{Key: k, Fingerprint: fp(k)}, nil
}

func (f *fakeWKD) set(address string, k *openpgp.Entity, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.key[address], f.err[address] = k, err
}

func (f *fakeWKD) count(address string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[address]
}

func fp(k *openpgp.Entity) string {
	return strings.ToUpper(hex.EncodeToString(k.PrimaryKey.Fingerprint))
}

type env struct {
	t   *testing.T
	wkd *fakeWKD
	now time.Time
	dir string
	c   *Cache
	cfg Config
}

func newEnv(t *testing.T, accept bool) *env {
	e := &env{t: t, wkd: &fakeWKD{key: map[string]*openpgp.Entity{}, err: map[string]error{}, calls: map[string]int{}},
		now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), dir: t.TempDir()}
	e.cfg = Config{WKD: e.wkd, AcceptKeyChange: accept, Now: func() time.Time { return e.now }}
	e.reopen()
	return e
}

func (e *env) reopen() {
	st, err := store.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Store = st
	if e.c, err = Open(cfg); err != nil {
		e.t.Fatal(err)
	}
}

func newKey(t *testing.T, email string, created time.Time, lifetime uint32) *openpgp.Entity {
	t.Helper()
	k, err := openpgp.NewEntity("U", "", email, &packet.Config{Time: func() time.Time { return created }, KeyLifetimeSecs: lifetime, Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const addr = "joe@example.test"

func TestStatesAndLifetimes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx := context.Background()
	k := newKey(t, addr, e.now.Add(-time.Hour), 0)
	e.wkd.set(addr, k, nil)
	if r := e.c.Get(ctx, "joe@Example.TEST."); r.State != StateKey || r.Fingerprint != fp(k) || r.Key == nil || r.Cached {
		t.Fatalf("first lookup: %+v", r)
	}
	e.reopen() // persisted
	if r, ok := e.c.Cached(addr); !ok || r.State != StateKey || r.Key == nil || fp(r.Key) != fp(k) {
		t.Errorf("after restart: %+v %v", r, ok)
	}
	if n := e.wkd.count(addr); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}

	none := "none@example.test"
	if r := e.c.Get(ctx, none); r.State != StateNoKey {
		t.Errorf("404: %+v", r)
	}
	e.now = e.now.Add(5 * time.Hour)
	e.c.Get(ctx, none)
	if n := e.wkd.count(none); n != 1 {
		t.Errorf("no-key looked up %d times within 6h, want 1", n)
	}
	e.now = e.now.Add(time.Hour)
	e.c.Get(ctx, none)
	if n := e.wkd.count(none); n != 2 {
		t.Errorf("no-key looked up %d times after 6h, want 2", n)
	}

	down := "down@example.test"
	e.wkd.set(down, nil, fmt.Errorf("%w: timeout", wkd.ErrUnknown))
	if r := e.c.Get(ctx, down); r.State != StateUnknown {
		t.Errorf("network failure: %+v, want unknown (never no-key)", r)
	}
	e.reopen()
	if _, ok := e.c.Cached(down); ok {
		t.Error("unknown was stored; it must stay in memory only")
	}
}

// TestTrustOnFirstUse: the first key is pinned; a different key while the
// pinned one is valid is refused (or accepted by policy), counted; a key
// replacing an expired one is taken silently.
func TestTrustOnFirstUse(t *testing.T) {
	t.Parallel()
	for _, accept := range []bool{false, true} {
		e := newEnv(t, accept)
		ctx := context.Background()
		first := newKey(t, addr, e.now.Add(-time.Hour), 0)
		e.wkd.set(addr, first, nil)
		e.c.Get(ctx, addr)
		second := newKey(t, addr, e.now, 0)
		e.wkd.set(addr, second, nil)
		e.now = e.now.Add(25 * time.Hour)
		r := e.c.Get(ctx, addr)
		want := StateChanged
		if accept {
			want = StateKey
		}
		if r.State != want || e.c.KeyChanges() != 1 {
			t.Errorf("accept=%v: changed key gives %s (%d changes), want %s and 1", accept, r.State, e.c.KeyChanges(), want)
		}
		wantFP := fp(first)
		if accept {
			wantFP = fp(second)
		}
		if r.Key == nil || r.Fingerprint != wantFP {
			t.Errorf("accept=%v: key %s returned, want %s (the pinned one unless the change is accepted)", accept, r.Fingerprint, wantFP)
		}
	}

	e := newEnv(t, false)
	ctx := context.Background()
	short := newKey(t, addr, e.now.Add(-time.Hour), 2*3600)
	e.wkd.set(addr, short, nil)
	e.c.Get(ctx, addr)
	next := newKey(t, addr, e.now, 0)
	e.wkd.set(addr, next, nil)
	e.now = e.now.Add(25 * time.Hour) // the pinned key expired
	if r := e.c.Get(ctx, addr); r.State != StateKey || r.Fingerprint != fp(next) || e.c.KeyChanges() != 0 {
		t.Errorf("replacing an expired key: %+v, %d changes", r, e.c.KeyChanges())
	}
}

func TestBackgroundRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx := context.Background()
	k := newKey(t, addr, e.now.Add(-time.Hour), 0)
	e.wkd.set(addr, k, nil)
	e.c.Get(ctx, addr)
	e.now = e.now.Add(17 * time.Hour)
	if n := e.c.RefreshDue(ctx); n != 0 {
		t.Errorf("refreshed %d before three quarters of the lifetime", n)
	}
	e.now = e.now.Add(2 * time.Hour)
	e.wkd.set(addr, nil, fmt.Errorf("%w: 503", wkd.ErrUnknown))
	if n := e.c.RefreshDue(ctx); n != 1 || e.wkd.count(addr) != 2 {
		t.Fatalf("refreshed %d (%d lookups), want 1", n, e.wkd.count(addr))
	}
	if r, ok := e.c.Cached(addr); !ok || r.State != StateKey {
		t.Errorf("after a failed refresh: %+v %v, want the key kept", r, ok)
	}
}

// TestNoDirectoryPerDomain: a domain without a directory is looked up
// once for all its addresses, for the no-key lifetime; an address's own
// key still wins; a 404 for one address says nothing of the others.
func TestNoDirectoryPerDomain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	ctx := context.Background()
	noDir := fmt.Errorf("%w: neither openpgpkey.bare.test nor bare.test has an address: %w", wkd.ErrNoKey, wkd.ErrNoDirectory)
	keyed := "keyed@bare.test"
	k := newKey(t, keyed, e.now.Add(-time.Hour), 0)
	e.wkd.set(keyed, k, nil)
	e.c.Get(ctx, keyed) // found before the directory went
	for _, a := range []string{"a@bare.test", "b@bare.test", "c@BARE.test"} {
		e.wkd.set(strings.ToLower(a), nil, noDir)
	}
	if r := e.c.Get(ctx, "a@bare.test"); r.State != StateNoKey || r.Cached {
		t.Fatalf("first address: %+v", r)
	}
	for _, a := range []string{"b@bare.test", "c@BARE.test"} {
		r := e.c.Get(ctx, a)
		if r.State != StateNoKey || !r.Cached || r.Err == nil || !strings.Contains(r.Err.Error(), "no directory") {
			t.Errorf("%s: %+v, want no key from the domain's answer", a, r)
		}
		if n := e.wkd.count(strings.ToLower(a)); n != 0 {
			t.Errorf("%s looked up %d times, want 0", a, n)
		}
	}
	if r := e.c.Get(ctx, keyed); r.State != StateKey {
		t.Errorf("address with its own key: %+v, want the key until it expires", r)
	}
	if n := e.c.Len(); n != 3 { // keyed's entry and pin, bare.test
		t.Errorf("Len %d, want 3: no entry per address without a directory", n)
	}
	e.now = e.now.Add(6 * time.Hour)
	e.c.Get(ctx, "b@bare.test")
	if n := e.wkd.count("b@bare.test"); n != 1 {
		t.Errorf("after the no-key lifetime: %d lookups, want 1", n)
	}

	e.c.Get(ctx, "x@plain.test") // 404: this address only
	e.c.Get(ctx, "y@plain.test")
	if n := e.wkd.count("y@plain.test"); n != 1 {
		t.Errorf("a 404 for one address spared another's lookup (%d lookups)", n)
	}
}
