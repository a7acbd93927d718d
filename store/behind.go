package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// behindMax is how many pending writes make Behind write at once rather
// than at the end of its interval.
const behindMax = 256

// Behind is the embedded store for the running relay: Put and Delete are
// kept in memory and written together, one transaction and one sync to
// disk, at most interval later (or as soon as behindMax are pending).
// Each write of the file costs a sync; written one by one, the policies
// and pins of a relay's first contacts with many domains cost more than
// the contacts themselves.
//
// What it holds is the relay's own cache, read back from memory: a crash
// loses at most interval of it, which is fetched again. Every other
// method writes what is pending first, so that a read sees every earlier
// write; Close writes it too. Another process (`caliop learned forget`)
// sees a write at most interval late.
type Behind struct {
	*Bolt
	// onError hears of a write that failed; the writes stay pending and
	// are tried again at the next interval.
	onError func(error)

	mu      sync.Mutex
	pending map[behindKey][]byte // JSON value; nil: delete
	full    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	flushMu sync.Mutex // one write of the file at a time, in order
}

type behindKey struct{ bucket, key string }

// NewBehind starts writing b's pending writes every interval until
// Close; onError (nil: ignored) hears of failed writes.
func NewBehind(b *Bolt, interval time.Duration, onError func(error)) *Behind {
	if onError == nil {
		onError = func(error) {}
	}
	w := &Behind{Bolt: b, onError: onError, pending: map[behindKey][]byte{},
		full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(interval)
	return w
}

func (w *Behind) run(interval time.Duration) {
	defer close(w.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.full:
		}
		if err := w.Flush(); err != nil {
			w.onError(err)
		}
	}
}

// Put keeps v, as JSON now, for the next write.
func (w *Behind) Put(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s/%s: %w", bucket, key, err)
	}
	w.keep(behindKey{bucket, key}, b)
	return nil
}

// Delete keeps the removal of key for the next write.
func (w *Behind) Delete(bucket, key string) error {
	w.keep(behindKey{bucket, key}, nil)
	return nil
}

func (w *Behind) keep(k behindKey, v []byte) {
	w.mu.Lock()
	w.pending[k] = v
	n := len(w.pending)
	w.mu.Unlock()
	if n >= behindMax {
		select {
		case w.full <- struct{}{}:
		default:
		}
	}
}

// Flush writes what is pending, in one transaction. On failure the
// writes stay pending, behind any made since.
func (w *Behind) Flush() error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.pending
	if len(batch) == 0 {
		w.mu.Unlock()
		return nil
	}
	w.pending = map[behindKey][]byte{}
	w.mu.Unlock()
	err := w.Bolt.with(true, func(tx *bolt.Tx) error {
		for k, v := range batch {
			if v == nil {
				if bk := tx.Bucket([]byte(k.bucket)); bk != nil {
					if err := bk.Delete([]byte(k.key)); err != nil {
						return err
					}
				}
				continue
			}
			bk, err := tx.CreateBucketIfNotExists([]byte(k.bucket))
			if err != nil {
				return err
			}
			if err := bk.Put([]byte(k.key), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.mu.Lock()
		for k, v := range batch {
			if _, newer := w.pending[k]; !newer {
				w.pending[k] = v
			}
		}
		w.mu.Unlock()
		return fmt.Errorf("%w (%d writes kept for the next try)", err, len(batch))
	}
	return nil
}

// Pending is how many writes wait.
func (w *Behind) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.pending)
}

// Get reads key after writing what is pending.
func (w *Behind) Get(bucket, key string, v any) (bool, error) {
	if err := w.Flush(); err != nil {
		return false, err
	}
	return w.Bolt.Get(bucket, key, v)
}

// ForEach reads bucket after writing what is pending.
func (w *Behind) ForEach(bucket string, fn func(key string, value []byte) error) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.Bolt.ForEach(bucket, fn)
}

// Update updates key after writing what is pending.
func (w *Behind) Update(bucket, key string, fn func(old []byte) ([]byte, error)) error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.Bolt.Update(bucket, key, fn)
}

// UpdateEach updates keys after writing what is pending.
func (w *Behind) UpdateEach(bucket string, keys []string, fn func(key string, old []byte) ([]byte, error)) map[string]error {
	if err := w.Flush(); err != nil {
		failed := make(map[string]error, len(keys))
		for _, k := range keys {
			failed[k] = err
		}
		return failed
	}
	return w.Bolt.UpdateEach(bucket, keys, fn)
}

// Check writes what is pending: a store that cannot be written is not
// ready.
func (w *Behind) Check() error {
	if err := w.Flush(); err != nil {
		return err
	}
	return w.Bolt.Check()
}

// Close stops the interval and writes what is pending.
func (w *Behind) Close() error {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
	if err := w.Flush(); err != nil {
		return err
	}
	return w.Bolt.Close()
}

var _ Store = (*Behind)(nil)
