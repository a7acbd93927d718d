package wkdcache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
)

// downStore is a store that can be made unreadable.
type downStore struct {
	Store
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *downStore) Get(bucket, key string, v any) (bool, error) {
	if s.down.Load() {
		return false, errDown
	}
	return s.Store.Get(bucket, key, v)
}

// replica opens another cache in shared mode on e's store, as a replica
// started before e's cache looked anything up.
func (e *env) replica() (*Cache, *downStore) {
	e.t.Helper()
	st, err := store.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	ds := &downStore{Store: st}
	cfg := e.cfg
	cfg.Store, cfg.Shared = ds, true
	c, err := Open(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, ds
}

// TestSharedKeyAndPin: a key one replica found is used by another without
// a lookup; a different key the directory serves later is checked
// against the pin the first replica set.
func TestSharedKeyAndPin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	e.cfg.Shared = true
	e.reopen()
	b, _ := e.replica()
	ctx := context.Background()
	first := newKey(t, addr, e.now.Add(-time.Hour), 0)
	e.wkd.set(addr, first, nil)
	if r := e.c.Get(ctx, addr); r.State != StateKey {
		t.Fatalf("first replica: %+v", r)
	}
	e.wkd.set(addr, nil, fmt.Errorf("%w: timeout", wkd.ErrUnknown))
	r := b.Get(ctx, addr)
	if r.State != StateKey || r.Fingerprint != fp(first) || r.Key == nil || !r.Cached {
		t.Errorf("second replica: %+v", r)
	}
	if n := e.wkd.count(addr); n != 1 {
		t.Errorf("%d lookups, want 1: the second replica used the store", n)
	}

	// Another address, pinned by the first replica; the second replica
	// only meets it once the directory serves a new key.
	other := "ann@example.test"
	pinned := newKey(t, other, e.now.Add(-time.Hour), 0)
	e.wkd.set(other, pinned, nil)
	e.c.Get(ctx, other)
	e.now = e.now.Add(25 * time.Hour) // the cached entry expired, the pin did not
	e.wkd.set(other, newKey(t, other, e.now, 0), nil)
	if r := b.Get(ctx, other); r.State != StateChanged || r.Key == nil || b.KeyChanges() != 1 {
		t.Errorf("new key against another replica's pin: %+v (%d changes), want key-changed", r, b.KeyChanges())
	}
}

// TestSharedStoreDown: with the store unreadable, an address missing from
// memory is unknown, and no lookup is made (its pin cannot be checked);
// the store back, all is as before.
func TestSharedStoreDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false)
	b, ds := e.replica()
	ctx := context.Background()
	k := newKey(t, addr, e.now.Add(-time.Hour), 0)
	e.wkd.set(addr, k, nil)
	ds.down.Store(true)
	r := b.Get(ctx, addr)
	if r.State != StateUnknown || !errors.Is(r.Err, ErrStoreUnavailable) || !errors.Is(r.Err, errDown) {
		t.Errorf("store down: %+v, want unknown", r)
	}
	if n := e.wkd.count(addr); n != 0 {
		t.Errorf("%d lookups while the pin could not be read, want 0", n)
	}
	ds.down.Store(false)
	if r := b.Get(ctx, addr); r.State != StateKey || r.Fingerprint != fp(k) {
		t.Errorf("store back: %+v", r)
	}
}
