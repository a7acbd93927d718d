package store_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/store/storetest"
)

// TestBehindStore runs the Store suite on one Behind, as both handles:
// within the process it keeps the whole contract.
func TestBehindStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		bs, err := store.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		w := store.NewBehind(bs, time.Hour, nil)
		return w, w
	})
}

// lastTx is the id of the file's last write transaction.
func lastTx(t *testing.T, path string) int {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id := 0
	db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// TestBehindWritesTogether: writes reach the file only at Flush, all in
// one transaction, the last write of a key winning.
func TestBehindWritesTogether(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bs, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := store.NewBehind(bs, time.Hour, nil)
	defer w.Close()
	other, _ := store.Open(dir) // another process on the same file
	before := lastTx(t, bs.Path())
	for i := range 100 {
		if err := w.Put("b", "k"+strconv.Itoa(i), item{N: i}); err != nil {
			t.Fatal(err)
		}
	}
	w.Delete("b", "k1")
	w.Put("b", "k2", item{N: -2})
	w.Delete("other", "absent")
	var got item
	if found, err := other.Get("b", "k0", &got); err != nil || found {
		t.Fatalf("before Flush, another reader found k0 = %v, %v; want it still pending", found, err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := lastTx(t, bs.Path()) - before; n != 1 {
		t.Errorf("%d write transactions for 103 writes; want 1", n)
	}
	for key, want := range map[string]int{"k0": 0, "k2": -2, "k99": 99} {
		if found, err := other.Get("b", key, &got); err != nil || !found || got.N != want {
			t.Errorf("after Flush, %s = %+v (found %v, %v); want N %d", key, got, found, err, want)
		}
	}
	if found, _ := other.Get("b", "k1", &got); found {
		t.Error("k1 deleted after its Put is still there")
	}
}

// TestBehindReadsSeePending: a read through Behind sees its own pending
// writes; Close writes what is left.
func TestBehindReadsSeePending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bs, _ := store.Open(dir)
	w := store.NewBehind(bs, time.Hour, nil)
	w.Put("b", "k", item{N: 7})
	var got item
	if found, err := w.Get("b", "k", &got); err != nil || !found || got.N != 7 {
		t.Fatalf("Get after Put = %+v, %v, %v; want N 7", got, found, err)
	}
	w.Put("b", "last", item{N: 8})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	other, _ := store.Open(dir)
	if found, err := other.Get("b", "last", &got); err != nil || !found || got.N != 8 {
		t.Fatalf("after Close, last = %+v, %v, %v; want N 8", got, found, err)
	}
}

// TestBehindInterval: pending writes reach the file on their own.
func TestBehindInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bs, _ := store.Open(dir)
	w := store.NewBehind(bs, 10*time.Millisecond, nil)
	defer w.Close()
	w.Put("b", "k", item{N: 1})
	other, _ := store.Open(dir)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var got item
		if found, err := other.Get("b", "k", &got); err == nil && found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a pending write was not written within 5s at a 10ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBehindKeepsFailedWrites: a write that fails stays pending, is
// reported, and goes in once the file can be written again; a read
// meanwhile fails rather than miss it.
func TestBehindKeepsFailedWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bs, _ := store.Open(dir)
	errs := make(chan error, 10)
	w := store.NewBehind(bs, 10*time.Millisecond, func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	defer w.Close()
	path := filepath.Join(dir, store.FileName)
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil { // a directory in the file's place
		t.Fatal(err)
	}
	w.Put("b", "k", item{N: 3})
	select {
	case <-errs:
	case <-time.After(5 * time.Second):
		t.Fatal("no failed write reported within 5s")
	}
	if w.Pending() != 1 {
		t.Fatalf("%d writes pending after a failure; want 1", w.Pending())
	}
	var got item
	if _, err := w.Get("b", "k", &got); err == nil {
		t.Error("Get while the pending write cannot be made: no error")
	}
	os.Remove(path)
	os.Rename(path+".away", path)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if found, err := bs.Get("b", "k", &got); err != nil || !found || got.N != 3 {
		t.Fatalf("after the file came back, k = %+v, %v, %v; want N 3", got, found, err)
	}
}
