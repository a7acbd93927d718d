package store_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/store/storetest"
)

type item struct {
	Name string
	N    int
}

func TestPutGetDeleteSurviveReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k1", item{"one", 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k2", item{"two", 2}); err != nil {
		t.Fatal(err)
	}
	// A second Store on the same directory, as after a restart.
	s2, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got item
	if ok, err := s2.Get("b", "k1", &got); !ok || err != nil || got != (item{"one", 1}) {
		t.Errorf("Get(k1) = %+v, %v, %v", got, ok, err)
	}
	if ok, err := s2.Get("b", "missing", &got); ok || err != nil {
		t.Errorf("Get(missing) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := s2.Get("nobucket", "k1", &got); ok || err != nil {
		t.Errorf("Get in a missing bucket = %v, %v; want false, nil", ok, err)
	}
	if err := s2.Delete("b", "k1"); err != nil {
		t.Fatal(err)
	}
	var keys []string
	err = s.ForEach("b", func(k string, v []byte) error {
		var it item
		if err := json.Unmarshal(v, &it); err != nil {
			return err
		}
		keys = append(keys, k+"="+it.Name)
		return nil
	})
	if err != nil || strings.Join(keys, ",") != "k2=two" {
		t.Errorf("ForEach after delete = %v, %v; want [k2=two]", keys, err)
	}
}

// TestConcurrentWriters checks that the open-per-transaction lock lets
// several writers (goroutines here, processes in production) take turns.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _ := store.Open(dir)
	b, _ := store.Open(dir)
	var wg sync.WaitGroup
	for i := range 20 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			if err := s.Put("b", string(rune('a'+i)), item{N: i}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := 0
	a.ForEach("b", func(string, []byte) error { n++; return nil })
	if n != 20 {
		t.Errorf("%d keys stored, want 20", n)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", "k", func() {}); err == nil || !strings.Contains(err.Error(), "store: b/k") {
		t.Errorf("Put of an unencodable value: %v", err)
	}
	// A directory where the file should be.
	path := filepath.Join(dir, store.FileName)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o750); err != nil {
		t.Fatal(err)
	}
	err = s.Put("b", "k", 1)
	if err == nil || !strings.Contains(err.Error(), "store: "+path) {
		t.Errorf("Put on a directory: %v", err)
	}
	if _, err := store.Open(dir); err == nil || !strings.Contains(err.Error(), "store: "+path) {
		t.Errorf("Open with a directory in place of the file: %v", err)
	}
}

// TestBoltStore runs the Store suite on two Bolt values on one directory,
// as two processes on one data_dir.
func TestBoltStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) (a, b store.Store) {
		dir := t.TempDir()
		a, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err = store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}
