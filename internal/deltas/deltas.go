// Package deltas holds counts added in memory between writes to a store:
// each key's delta is written by one atomic update, so that a session
// costs no store write and replicas sharing the store add up; a delta
// whose write failed goes back, merged with what came meanwhile.
package deltas

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Map is the pending deltas by key. Safe for concurrent use.
type Map[T any] struct {
	merge func(into, from *T)

	mu sync.Mutex
	m  map[string]*T
}

// New returns an empty Map whose deltas merge with merge.
func New[T any](merge func(into, from *T)) *Map[T] {
	return &Map[T]{merge: merge, m: map[string]*T{}}
}

// Update runs f on key's delta, a new zero one when there is none.
func (d *Map[T]) Update(key string, f func(*T)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.m[key]
	if v == nil {
		v = new(T)
		d.m[key] = v
	}
	f(v)
}

// Len is the number of keys with a delta.
func (d *Map[T]) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// Flush takes every delta and writes each with write, in key order. A
// delta whose write failed goes back for the next Flush; the errors are
// joined, each naming its key.
func (d *Map[T]) Flush(write func(key string, delta *T) error) error {
	return d.FlushAll(func(todo map[string]*T) map[string]error {
		failed := map[string]error{}
		for _, key := range slices.Sorted(maps.Keys(todo)) {
			if err := write(key, todo[key]); err != nil {
				failed[key] = err
			}
		}
		return failed
	})
}

// FlushAll takes every delta and hands them to write at once, for a store
// that writes many keys in one transaction; write returns the keys it
// could not write, whose deltas go back for the next flush. The errors
// are joined, in key order, each naming its key.
func (d *Map[T]) FlushAll(write func(todo map[string]*T) (failed map[string]error)) error {
	d.mu.Lock()
	todo := d.m
	d.m = map[string]*T{}
	d.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	failed := write(todo)
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(failed)) {
		d.putBack(key, todo[key])
		errs = append(errs, fmt.Errorf("%s: %w", key, failed[key]))
	}
	return errors.Join(errs...)
}

// putBack returns an unwritten delta, merged with what came meanwhile.
func (d *Map[T]) putBack(key string, v *T) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if meanwhile := d.m[key]; meanwhile != nil {
		d.merge(v, meanwhile)
	}
	d.m[key] = v
}
