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
