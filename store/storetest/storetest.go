// Package storetest is the test suite every store.Store must pass: the
// contract of the interface, checked through two handles on one store, as
// two processes (Bolt on one data_dir) or two replicas (Redis) see it.
package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/store"
)

// Run checks the Store contract on the stores open makes. open returns
// two handles on the same new, empty store; it is called once per
// subtest, by parallel subtests at once. Run closes both handles when the
// subtest ends.
func Run(t *testing.T, open func(t *testing.T) (a, b store.Store)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, a, b store.Store)
	}{
		{"RoundTrip", roundTrip},
		{"Missing", missing},
		{"BadValues", badValues},
		{"ForEachStops", forEachStops},
		{"UpdateAtomic", updateAtomic},
		{"UpdateCreatesAndDeletes", updateCreatesAndDeletes},
		{"UpdateError", updateError},
		{"UpdateEach", updateEach},
		{"Lock", lock},
		{"LockExpires", lockExpires},
		{"Check", check},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			t.Cleanup(func() {
				_ = a.Close()
				_ = b.Close()
			})
			tc.fn(t, a, b)
		})
	}
}

type item struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

// keys in bbolt's (byte) order, put in another order.
var (
	sortedKeys = []string{"A", "a", "a-b", "a.b", "b", "é"}
	putOrder   = []int{4, 0, 5, 2, 1, 3}
)

func roundTrip(t *testing.T, a, b store.Store) {
	for _, i := range putOrder {
		if err := a.Put("bk", sortedKeys[i], item{sortedKeys[i], i}); err != nil {
			t.Fatalf("Put(%q): %v", sortedKeys[i], err)
		}
	}
	// Overwrite: the last Put wins.
	if err := a.Put("bk", "b", item{"b2", 40}); err != nil {
		t.Fatal(err)
	}
	var got item
	if ok, err := b.Get("bk", "b", &got); !ok || err != nil || got != (item{"b2", 40}) {
		t.Errorf("Get(b) through the other handle = %+v, %v, %v; want {b2 40}, true, nil", got, ok, err)
	}
	want := map[string]item{}
	for i, k := range sortedKeys {
		want[k] = item{k, i}
	}
	want["b"] = item{"b2", 40}
	if err := eachMatches(b, "bk", sortedKeys, want); err != nil {
		t.Errorf("ForEach through the other handle: %v", err)
	}

	if err := b.Delete("bk", "a-b"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := b.Delete("bk", "a-b"); err != nil {
		t.Errorf("Delete of a missing key: %v; want nil", err)
	}
	got = item{}
	if ok, err := a.Get("bk", "a-b", &got); ok || err != nil || got != (item{}) {
		t.Errorf("Get after Delete through the other handle = %+v, %v, %v; want false, nil", got, ok, err)
	}
	left := slices.DeleteFunc(slices.Clone(sortedKeys), func(k string) bool { return k == "a-b" })
	if err := eachMatches(a, "bk", left, want); err != nil {
		t.Errorf("ForEach after Delete: %v", err)
	}
	// Another bucket is another namespace.
	if ok, err := a.Get("other", "b", &got); ok || err != nil {
		t.Errorf("Get(other/b) = %v, %v; want false, nil", ok, err)
	}
}

// eachMatches checks that ForEach yields exactly keys, in that order,
// with the JSON of want[key].
func eachMatches(s store.Store, bucket string, keys []string, want map[string]item) error {
	var seen []string
	err := s.ForEach(bucket, func(k string, v []byte) error {
		seen = append(seen, k)
		var it item
		if err := json.Unmarshal(v, &it); err != nil {
			return fmt.Errorf("value of %q: %w", k, err)
		}
		if it != want[k] {
			return fmt.Errorf("value of %q = %+v, want %+v", k, it, want[k])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !slices.Equal(seen, keys) {
		return fmt.Errorf("keys %q, want %q", seen, keys)
	}
	return nil
}

func missing(t *testing.T, a, b store.Store) {
	got := item{"untouched", 1}
	if ok, err := a.Get("nobucket", "k", &got); ok || err != nil || got != (item{"untouched", 1}) {
		t.Errorf("Get in a missing bucket = %+v, %v, %v; want false, nil and v untouched", got, ok, err)
	}
	if err := b.Put("bk", "k", item{"k", 1}); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Get("bk", "nokey", &got); ok || err != nil || got != (item{"untouched", 1}) {
		t.Errorf("Get of a missing key = %+v, %v, %v; want false, nil and v untouched", got, ok, err)
	}
	if err := a.Delete("nobucket", "k"); err != nil {
		t.Errorf("Delete in a missing bucket: %v; want nil", err)
	}
	n := 0
	if err := a.ForEach("nobucket", func(string, []byte) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("ForEach of a missing bucket: %d calls, %v; want 0, nil", n, err)
	}
}

func badValues(t *testing.T, a, b store.Store) {
	if err := a.Put("bk", "f", func() {}); err == nil {
		t.Error("Put of a value JSON cannot encode: nil error")
	}
	if ok, err := b.Get("bk", "f", new(any)); ok || err != nil {
		t.Errorf("Get after a failed Put = %v, %v; want false, nil", ok, err)
	}
	if err := a.Put("bk", "s", "text"); err != nil {
		t.Fatal(err)
	}
	var n int
	if _, err := b.Get("bk", "s", &n); err == nil {
		t.Error("Get of a string into an int: nil error")
	}
}

func forEachStops(t *testing.T, a, b store.Store) {
	for i, k := range sortedKeys {
		if err := a.Put("bk", k, item{k, i}); err != nil {
			t.Fatal(err)
		}
	}
	stop := errors.New("stop here")
	calls := 0
	err := b.ForEach("bk", func(string, []byte) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ForEach whose fn errs: %d calls, %v; want 1 call and the error", calls, err)
	}
}

// counter is the JSON value updateAtomic increments.
type counter struct {
	N int `json:"n"`
}

func increment(old []byte) ([]byte, error) {
	var c counter
	if old != nil {
		if err := json.Unmarshal(old, &c); err != nil {
			return nil, err
		}
	}
	c.N++
	return json.Marshal(c)
}

func updateAtomic(t *testing.T, a, b store.Store) {
	const workers, each = 8, 25
	// Another key of the same bucket, written meanwhile, must not be lost
	// either.
	var wg sync.WaitGroup
	for _, s := range []store.Store{a, b} {
		for range workers {
			wg.Go(func() {
				for range each {
					if err := s.Update("bk", "n", increment); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Go(func() {
		for i := range each {
			if err := b.Put("bk", "side"+strconv.Itoa(i), i); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	wg.Wait()
	var c counter
	if ok, err := a.Get("bk", "n", &c); !ok || err != nil || c.N != 2*workers*each {
		t.Errorf("counter after %d concurrent increments = %d (%v, %v)", 2*workers*each, c.N, ok, err)
	}
	n := 0
	_ = b.ForEach("bk", func(string, []byte) error { n++; return nil })
	if n != each+1 {
		t.Errorf("%d keys in the bucket, want %d", n, each+1)
	}
}

func updateCreatesAndDeletes(t *testing.T, a, b store.Store) {
	var seen [][]byte
	err := a.Update("bk", "k", func(old []byte) ([]byte, error) {
		seen = append(seen, old)
		return json.Marshal(item{"new", 1})
	})
	if err != nil || len(seen) == 0 || seen[len(seen)-1] != nil {
		t.Fatalf("Update of a missing key: %v, old %q; want nil, old nil", err, seen)
	}
	var got item
	if ok, err := b.Get("bk", "k", &got); !ok || err != nil || got != (item{"new", 1}) {
		t.Errorf("Get after Update = %+v, %v, %v; want {new 1}", got, ok, err)
	}
	seen = nil
	err = b.Update("bk", "k", func(old []byte) ([]byte, error) {
		seen = append(seen, old)
		return nil, nil
	})
	var old item
	if err != nil || len(seen) == 0 || json.Unmarshal(seen[len(seen)-1], &old) != nil || old != (item{"new", 1}) {
		t.Fatalf("Update to nil: %v, old %q; want nil, old {new 1}", err, seen)
	}
	if ok, err := a.Get("bk", "k", &got); ok || err != nil {
		t.Errorf("Get after an Update to nil = %v, %v; want false, nil", ok, err)
	}
	if err := a.Update("bk", "k", func([]byte) ([]byte, error) { return nil, nil }); err != nil {
		t.Errorf("Update to nil of a missing key: %v", err)
	}
	n := 0
	_ = b.ForEach("bk", func(string, []byte) error { n++; return nil })
	if n != 0 {
		t.Errorf("%d keys left after the Update to nil, want 0", n)
	}
}

func updateError(t *testing.T, a, b store.Store) {
	if err := a.Put("bk", "k", item{"kept", 7}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := b.Update("bk", "k", func([]byte) ([]byte, error) { return []byte(`{"name":"x"}`), boom })
	if !errors.Is(err, boom) {
		t.Errorf("Update whose fn errs = %v, want that error", err)
	}
	var got item
	if ok, err := a.Get("bk", "k", &got); !ok || err != nil || got != (item{"kept", 7}) {
		t.Errorf("value after a failed Update = %+v, %v, %v; want the value before it, {kept 7}", got, ok, err)
	}
	if err := a.Update("bk", "absent", func([]byte) ([]byte, error) { return []byte(`1`), boom }); !errors.Is(err, boom) {
		t.Errorf("Update of a missing key whose fn errs = %v, want that error", err)
	}
	if ok, err := b.Get("bk", "absent", new(any)); ok || err != nil {
		t.Errorf("Get after a failed Update of a missing key = %v, %v; want false, nil", ok, err)
	}
}

// updateEach: every key is updated as Update would, concurrent increments
// of one key from the other store are not lost, and a key whose fn errs
// is left as it was and named, the others written.
func updateEach(t *testing.T, a, b store.Store) {
	if err := a.Put("bk", "bad", item{"kept", 7}); err != nil {
		t.Fatal(err)
	}
	if err := a.Put("bk", "gone", item{"old", 1}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			if err := b.Update("bk", "n", increment); err != nil {
				t.Errorf("Update: %v", err)
			}
		}
	})
	var failed map[string]error
	wg.Go(func() {
		for range 20 {
			failed = a.UpdateEach("bk", []string{"bad", "gone", "n", "new"}, func(key string, old []byte) ([]byte, error) {
				switch key {
				case "bad":
					return []byte(`{"name":"x"}`), boom
				case "gone":
					return nil, nil
				case "new":
					return json.Marshal(item{"new", 2})
				}
				return increment(old)
			})
			if len(failed) != 1 || !errors.Is(failed["bad"], boom) {
				t.Errorf("UpdateEach failed = %v, want bad: boom only", failed)
				return
			}
		}
	})
	wg.Wait()
	var c counter
	if ok, err := b.Get("bk", "n", &c); !ok || err != nil || c.N != 40 {
		t.Errorf("n after 20 increments by Update and 20 by UpdateEach = %d (%v, %v), want 40", c.N, ok, err)
	}
	var keys []string
	_ = b.ForEach("bk", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	if !slices.Equal(keys, []string{"bad", "n", "new"}) {
		t.Errorf("keys after UpdateEach %q, want bad, n, new", keys)
	}
	var got item
	if ok, err := b.Get("bk", "bad", &got); !ok || err != nil || got != (item{"kept", 7}) {
		t.Errorf("the key whose fn erred = %+v (%v, %v), want {kept 7} untouched", got, ok, err)
	}
	if ok, err := b.Get("bk", "new", &got); !ok || err != nil || got != (item{"new", 2}) {
		t.Errorf("the new key = %+v (%v, %v), want {new 2}", got, ok, err)
	}
	if ok, err := b.Get("bk", "gone", &got); ok || err != nil {
		t.Errorf("the key updated to nil is still there (%v, %v)", ok, err)
	}
}

func lock(t *testing.T, a, b store.Store) {
	unlock, err := a.Lock("job", time.Minute)
	if err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	if _, err := b.Lock("job", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Lock through the other handle = %v, want ErrLocked", err)
	}
	if _, err := a.Lock("job", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Errorf("second Lock through the same handle = %v, want ErrLocked", err)
	}
	unlockOther, err := b.Lock("other-job", time.Minute)
	if err != nil {
		t.Errorf("Lock of another name: %v", err)
	} else {
		unlockOther()
	}
	unlock()
	unlockB, err := b.Lock("job", time.Minute)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	if _, err := a.Lock("job", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Lock while the other handle holds it again = %v, want ErrLocked", err)
	}
	unlockB()
	unlockA, err := a.Lock("job", time.Minute)
	if err != nil {
		t.Fatalf("Lock after the second unlock: %v", err)
	}
	unlockA()
}

// lockExpires: a holder that dies loses the lock after ttl, and its late
// unlock does not release the lock of whoever took it next.
func lockExpires(t *testing.T, a, b store.Store) {
	const ttl = 300 * time.Millisecond
	start := time.Now()
	staleUnlock, err := a.Lock("job", ttl)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	if _, err := b.Lock("job", ttl); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("Lock before the ttl = %v, want ErrLocked", err)
	}
	var unlockB func()
	for deadline := time.Now().Add(5 * time.Second); unlockB == nil; {
		u, err := b.Lock("job", time.Minute)
		switch {
		case err == nil:
			unlockB = u
		case !errors.Is(err, store.ErrLocked):
			t.Fatalf("Lock: %v", err)
		case time.Now().After(deadline):
			t.Fatalf("lock with a ttl of %v still held after %v", ttl, time.Since(start))
		default:
			time.Sleep(20 * time.Millisecond)
		}
	}
	if d := time.Since(start); d < ttl {
		t.Errorf("lock taken again after %v, before its ttl of %v", d, ttl)
	}
	staleUnlock()
	if _, err := a.Lock("job", time.Minute); !errors.Is(err, store.ErrLocked) {
		t.Errorf("after a stale unlock, Lock = %v; want ErrLocked (the new holder keeps it)", err)
	}
	unlockB()
	if u, err := a.Lock("job", time.Minute); err != nil {
		t.Errorf("Lock after the new holder's unlock: %v", err)
	} else {
		u()
	}
}

func check(t *testing.T, a, b store.Store) {
	if err := a.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	if err := b.Check(); err != nil {
		t.Errorf("Check through the other handle: %v", err)
	}
}
