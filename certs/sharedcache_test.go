package certs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/caliop/relay/store"
)

// TestSharedCacheOneOrder: of two replicas missing the same certificate
// at once, one orders it and the other waits for its Put and gets it.
func TestSharedCacheOneOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var orders atomic.Int64
	var wg sync.WaitGroup
	got := make([][]byte, 2)
	for i := range 2 {
		st, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		c := &SharedCache{Store: st, Poll: 20 * time.Millisecond}
		wg.Go(func() {
			ctx := context.Background()
			data, err := c.Get(ctx, "mx.example.net")
			if errors.Is(err, autocert.ErrCacheMiss) {
				orders.Add(1)
				// This replica orders: a second Get of its own does not
				// wait for itself.
				if _, err := c.Get(ctx, "mx.example.net"); !errors.Is(err, autocert.ErrCacheMiss) {
					t.Errorf("the ordering replica's second Get: %v", err)
				}
				time.Sleep(200 * time.Millisecond) // the CA at work
				data = []byte("certificate and key")
				if err := c.Put(ctx, "mx.example.net", data); err != nil {
					t.Error(err)
				}
			} else if err != nil {
				t.Error(err)
			}
			got[i] = data
		})
	}
	wg.Wait()
	if n := orders.Load(); n != 1 {
		t.Errorf("%d orders, want 1", n)
	}
	for i, g := range got {
		if string(g) != "certificate and key" {
			t.Errorf("replica %d got %q", i, g)
		}
	}
}

// TestSharedCacheStaleOrder: an order that never ends (its replica died)
// holds the others back OrderWait at most.
func TestSharedCacheStaleOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _ := store.Open(dir)
	b, _ := store.Open(dir)
	ctx := context.Background()
	if _, err := (&SharedCache{Store: a}).Get(ctx, "k"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("first Get: %v", err)
	}
	start := time.Now()
	_, err := (&SharedCache{Store: b, OrderWait: 150 * time.Millisecond, Poll: 20 * time.Millisecond}).Get(ctx, "k")
	if el := time.Since(start); !errors.Is(err, autocert.ErrCacheMiss) || el < 150*time.Millisecond || el > 2*time.Second {
		t.Errorf("Get behind a stale order: %v after %v; want a miss after about 150ms", err, el)
	}
}

// failingStore cannot be read.
type failingStore struct{ LockingStore }

func (failingStore) Get(string, string, any) (bool, error) {
	return false, errors.New("connection refused")
}

// TestSharedCacheStoreDown: an unreadable store is an error, not a miss:
// a miss would order a certificate per handshake.
func TestSharedCacheStoreDown(t *testing.T) {
	t.Parallel()
	_, err := (&SharedCache{Store: failingStore{}}).Get(context.Background(), "k")
	if err == nil || errors.Is(err, autocert.ErrCacheMiss) {
		t.Errorf("Get on a store that is down: %v", err)
	}
}

// TestSharedCacheTokensNotWaited: an HTTP-01 token missing from the store
// is a miss at once, even while its name is locked: the CA waits.
func TestSharedCacheTokensNotWaited(t *testing.T) {
	t.Parallel()
	st, _ := store.Open(t.TempDir())
	c := &SharedCache{Store: st, OrderWait: time.Minute}
	for range 2 {
		start := time.Now()
		if _, err := c.Get(context.Background(), "tok+http-01"); !errors.Is(err, autocert.ErrCacheMiss) || time.Since(start) > time.Second {
			t.Errorf("token Get: %v after %v", err, time.Since(start))
		}
	}
	if err := c.Put(context.Background(), "tok+http-01", []byte("auth")); err != nil {
		t.Fatal(err)
	}
	if b, err := (&SharedCache{Store: st}).Get(context.Background(), "tok+http-01"); err != nil || string(b) != "auth" {
		t.Errorf("token from another replica: %q, %v", b, err)
	}
}

// TestSharedCachePeek: Peek takes no lock, so a replica that only looks
// (metrics, `caliop records`) never holds up another's order.
func TestSharedCachePeek(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _ := store.Open(dir)
	b, _ := store.Open(dir)
	ctx := context.Background()
	if _, err := (&SharedCache{Store: a}).Peek(ctx, "mx.example.net"); !errors.Is(err, autocert.ErrCacheMiss) {
		t.Fatalf("Peek of a missing entry: %v", err)
	}
	start := time.Now()
	if _, err := (&SharedCache{Store: b, Poll: 10 * time.Millisecond}).Get(ctx, "mx.example.net"); !errors.Is(err, autocert.ErrCacheMiss) || time.Since(start) > time.Second {
		t.Errorf("Get after a Peek elsewhere: %v after %v; want a miss at once", err, time.Since(start))
	}
}
