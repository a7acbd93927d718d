package stscache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/store"
)

// flakyStore is a store that can be made unreadable, counting reads.
type flakyStore struct {
	Store
	down  atomic.Bool
	reads atomic.Int64
}

var errDown = errors.New("connection refused")

func (s *flakyStore) Get(bucket, key string, v any) (bool, error) {
	s.reads.Add(1)
	if s.down.Load() {
		return false, errDown
	}
	return s.Store.Get(bucket, key, v)
}

func (s *flakyStore) Put(bucket, key string, v any) error {
	if s.down.Load() {
		return errDown
	}
	return s.Store.Put(bucket, key, v)
}

// replica opens a second cache on e's store, in shared mode, as another
// replica of a cluster started before e's cache fetched anything.
func (e *env) replica(st Store) *Cache {
	e.t.Helper()
	c, err := Open(Config{DNS: e.dns, Fetch: e.fetch, Store: st, Now: e.clock.Now, Shared: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func sharedEnv(t *testing.T) (*env, *flakyStore, *Cache) {
	e := newEnv(t)
	st, err := store.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := &flakyStore{Store: st}
	return e, fs, e.replica(fs)
}

// TestSharedPolicyEnforcedByOtherReplica: a policy one replica fetched
// applies on another whose fetch fails, also once the TXT record is
// gone (RFC 8461 §5.1).
func TestSharedPolicyEnforcedByOtherReplica(t *testing.T) {
	t.Parallel()
	e, _, b := sharedEnv(t)
	e.dns.set("example.com", "id1")
	e.fetch.serve("example.com", enforce(24*time.Hour, "mx.example.com"), nil)
	if r := e.lookup("example.com"); r.Source != SourceFetched {
		t.Fatalf("first replica: %+v", r)
	}
	e.fetch.serve("example.com", nil, errors.New("policy host down"))
	calls := e.fetch.count("example.com")
	r := b.Lookup(context.Background(), "example.com")
	if r.Policy == nil || r.Policy.Mode != mtasts.ModeEnforce || r.ID != "id1" || r.Source != SourceCached || r.StoreErr != nil {
		t.Fatalf("second replica: %+v", r)
	}
	if n := e.fetch.count("example.com"); n != calls {
		t.Errorf("second replica fetched %d times; the id was in the store", n-calls)
	}
	e.dns.set("example.com", "")
	if r := b.Lookup(context.Background(), "example.com"); r.Policy == nil || r.StoreErr != nil {
		t.Errorf("without its TXT record: %+v", r)
	}
}

// TestSharedNewIDFromStore: a replica holding an old id takes the new one
// another replica fetched, instead of fetching it again.
func TestSharedNewIDFromStore(t *testing.T) {
	t.Parallel()
	e, _, b := sharedEnv(t)
	e.dns.set("example.com", "id1")
	e.fetch.serve("example.com", enforce(24*time.Hour, "mx1.example.com"), nil)
	if r := b.Lookup(context.Background(), "example.com"); r.ID != "id1" {
		t.Fatalf("%+v", r)
	}
	e.dns.set("example.com", "id2")
	e.fetch.serve("example.com", enforce(24*time.Hour, "mx2.example.com"), nil)
	e.clock.Advance(time.Minute)
	if r := e.lookup("example.com"); r.ID != "id2" {
		t.Fatalf("first replica: %+v", r)
	}
	e.fetch.serve("example.com", nil, errors.New("policy host down"))
	r := b.Lookup(context.Background(), "example.com")
	if r.ID != "id2" || !r.Policy.Admits("mx2.example.com") || r.FetchErr != nil {
		t.Errorf("second replica: %+v", r)
	}
}

// TestSharedStoreDown: with the store unreadable and nothing in memory,
// the answer is StoreErr, never "no policy"; a policy fetched now or held
// in memory still applies; the store back, all is as before.
func TestSharedStoreDown(t *testing.T) {
	t.Parallel()
	e, fs, b := sharedEnv(t)
	e.dns.set("held.example", "h1")
	e.fetch.serve("held.example", enforce(24*time.Hour, "mx.held.example"), nil)
	e.lookup("held.example") // in the store, not in b's memory
	e.dns.set("fresh.example", "f1")
	e.fetch.serve("fresh.example", enforce(24*time.Hour, "mx.fresh.example"), nil)
	e.dns.set("known.example", "k1")
	e.fetch.serve("known.example", enforce(24*time.Hour, "mx.known.example"), nil)
	b.Lookup(context.Background(), "known.example") // in b's memory
	e.fetch.serve("held.example", nil, errors.New("policy host down"))
	e.fetch.serve("known.example", nil, errors.New("policy host down"))

	fs.down.Store(true)
	r := b.Lookup(context.Background(), "held.example")
	if r.Policy != nil || !errors.Is(r.StoreErr, ErrStoreUnavailable) || !errors.Is(r.StoreErr, errDown) {
		t.Errorf("held.example, store down: %+v; want StoreErr", r)
	}
	if r := b.Lookup(context.Background(), "nopolicy.example"); !errors.Is(r.StoreErr, ErrStoreUnavailable) {
		t.Errorf("nopolicy.example, store down: %+v; want StoreErr (a policy may be cached)", r)
	}
	if r := b.Lookup(context.Background(), "fresh.example"); r.Policy == nil || r.Source != SourceFetched || r.StoreErr != nil {
		t.Errorf("fresh.example fetched now: %+v", r)
	}
	if r := b.Lookup(context.Background(), "known.example"); r.Policy == nil || r.StoreErr != nil {
		t.Errorf("known.example from memory: %+v", r)
	}

	fs.down.Store(false)
	if r := b.Lookup(context.Background(), "held.example"); r.Policy == nil || r.ID != "h1" || r.StoreErr != nil {
		t.Errorf("held.example, store back: %+v", r)
	}
}

// TestSharedAbsentRemembered: a domain the store does not hold is asked
// again only after absentFor; without Shared the store is never read.
func TestSharedAbsentRemembered(t *testing.T) {
	t.Parallel()
	e, fs, b := sharedEnv(t)
	for range 5 {
		b.Lookup(context.Background(), "nopolicy.example")
	}
	if n := fs.reads.Load(); n != 1 {
		t.Errorf("%d store reads for 5 lookups, want 1", n)
	}
	e.clock.Advance(absentFor)
	b.Lookup(context.Background(), "nopolicy.example")
	if n := fs.reads.Load(); n != 2 {
		t.Errorf("%d store reads after absentFor, want 2", n)
	}

	st, _ := store.Open(e.dir)
	solo := &flakyStore{Store: st}
	c, err := Open(Config{DNS: e.dns, Fetch: e.fetch, Store: solo, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	c.Lookup(context.Background(), "nopolicy.example")
	if n := solo.reads.Load(); n != 0 {
		t.Errorf("embedded mode read the store %d times", n)
	}
}
