package deltas

import (
	"errors"
	"testing"
)

// TestFlushKeepsFailed: a failed write puts the delta back, merged with
// what was added meanwhile; a successful one takes it.
func TestFlushKeepsFailed(t *testing.T) {
	d := New(func(into, from *int) { *into += *from })
	d.Update("a", func(v *int) { *v += 2 })
	d.Update("b", func(v *int) { *v += 3 })
	written := map[string]int{}
	err := d.Flush(func(key string, v *int) error {
		if key == "b" {
			d.Update("b", func(v *int) { *v += 1 }) // arrives during the write
			return errors.New("store down")
		}
		written[key] += *v
		return nil
	})
	if err == nil || written["a"] != 2 || d.Len() != 1 {
		t.Fatalf("first flush: %v %v len %d", err, written, d.Len())
	}
	if err := d.Flush(func(key string, v *int) error { written[key] += *v; return nil }); err != nil {
		t.Fatal(err)
	}
	if written["b"] != 4 || d.Len() != 0 {
		t.Errorf("b written %d (want 3 + 1), %d left", written["b"], d.Len())
	}
}

// TestFlushAll: every delta goes to one write; those it reports failed
// come back, merged with what arrived during the write.
func TestFlushAll(t *testing.T) {
	d := New(func(into, from *int) { *into += *from })
	d.Update("a", func(v *int) { *v += 2 })
	d.Update("b", func(v *int) { *v += 3 })
	calls := 0
	err := d.FlushAll(func(todo map[string]*int) map[string]error {
		calls++
		if len(todo) != 2 || *todo["a"] != 2 || *todo["b"] != 3 {
			t.Errorf("write got %d deltas, want a: 2 and b: 3", len(todo))
		}
		d.Update("b", func(v *int) { *v += 1 })
		return map[string]error{"b": errors.New("store down")}
	})
	if err == nil || calls != 1 || d.Len() != 1 {
		t.Fatalf("FlushAll: %v, %d writes, %d left; want an error naming b, 1 write, b left", err, calls, d.Len())
	}
	var b int
	if err := d.FlushAll(func(todo map[string]*int) map[string]error { b = *todo["b"]; return nil }); err != nil || b != 4 {
		t.Errorf("second FlushAll: %v, b = %d, want 3 + 1", err, b)
	}
	if err := d.FlushAll(func(map[string]*int) map[string]error { t.Error("write called with nothing to write"); return nil }); err != nil {
		t.Error(err)
	}
}
