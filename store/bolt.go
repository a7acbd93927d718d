package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the store's file inside data_dir.
const FileName = "caliop.db"

// lockTimeout bounds the wait for another process's transaction.
const lockTimeout = 5 * time.Second

// Bolt is the embedded store: one bbolt file under data_dir, safe for
// concurrent use, also by several processes. The file is opened for each
// transaction and closed after it, so that the lock bbolt takes is held
// only for milliseconds: `caliop mta-sts` can read and update the same
// file while the relay runs.
type Bolt struct {
	path string
}

// Open checks that the store in dir can be opened (creating dir and the
// file if needed) and returns it.
func Open(dir string) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Bolt{path: filepath.Join(dir, FileName)}
	if err := s.with(false, func(*bolt.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file's path.
func (s *Bolt) Path() string { return s.path }

// with runs fn in a transaction on a freshly opened file.
func (s *Bolt) with(write bool, fn func(*bolt.Tx) error) error {
	db, err := bolt.Open(s.path, 0o640, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolt.ErrTimeout) {
		return fmt.Errorf("store: %s: locked by another process for more than %v", s.path, lockTimeout)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.path, err)
	}
	defer db.Close()
	if write {
		err = db.Update(fn)
	} else {
		err = db.View(fn)
	}
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.path, err)
	}
	return nil
}

// Put stores v as JSON under key in bucket.
func (s *Bolt) Put(bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: %s/%s: %w", bucket, key, err)
	}
	return s.with(true, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return bk.Put([]byte(key), b)
	})
}

// Delete removes key from bucket; a missing key is not an error.
func (s *Bolt) Delete(bucket, key string) error {
	return s.with(true, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.Delete([]byte(key))
	})
}

// Get decodes the value under key into v and reports whether it existed.
func (s *Bolt) Get(bucket, key string, v any) (bool, error) {
	found := false
	err := s.with(false, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		b := bk.Get([]byte(key))
		if b == nil {
			return nil
		}
		found = true
		return json.Unmarshal(b, v)
	})
	return found, err
}

// ForEach calls fn with every key and raw JSON value of bucket, in key
// order. The value is only valid during the call.
func (s *Bolt) ForEach(bucket string, fn func(key string, value []byte) error) error {
	return s.with(false, func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucket))
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, v []byte) error { return fn(string(k), v) })
	})
}

// Check opens the file and reads nothing: an error means the store is
// unusable (readiness).
func (s *Bolt) Check() error {
	return s.with(false, func(*bolt.Tx) error { return nil })
}

// Update runs fn and writes its result in one bbolt write transaction,
// which excludes every other writer of the file.
func (s *Bolt) Update(bucket, key string, fn func(old []byte) ([]byte, error)) error {
	return s.with(true, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return updateKey(bk, key, fn)
	})
}

// UpdateEach runs fn for every key in one bbolt write transaction: one
// sync to disk for them all. If the transaction fails, every key failed.
func (s *Bolt) UpdateEach(bucket string, keys []string, fn func(key string, old []byte) ([]byte, error)) map[string]error {
	failed := map[string]error{}
	err := s.with(true, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		for _, key := range keys {
			if err := updateKey(bk, key, func(old []byte) ([]byte, error) { return fn(key, old) }); err != nil {
				failed[key] = err
			}
		}
		return nil
	})
	if err != nil {
		for _, key := range keys {
			failed[key] = err
		}
	}
	return failed
}

// updateKey replaces key's value in bk by fn's result (nil: deleted).
func updateKey(bk *bolt.Bucket, key string, fn func(old []byte) ([]byte, error)) error {
	var old []byte
	if v := bk.Get([]byte(key)); v != nil {
		old = append([]byte(nil), v...) // bbolt's memory is read-only
	}
	b, err := fn(old)
	if err != nil {
		return err
	}
	if b == nil {
		return bk.Delete([]byte(key))
	}
	return bk.Put([]byte(key), b)
}

// locksBucket holds the held locks: name → boltLock.
const locksBucket = "locks"

type boltLock struct {
	Token string    `json:"token"`
	Until time.Time `json:"until"`
}

// Lock records the lock in the file, so that it also excludes other
// processes on the same data_dir.
func (s *Bolt) Lock(name string, ttl time.Duration) (func(), error) {
	token := newToken()
	err := s.Update(locksBucket, name, func(old []byte) ([]byte, error) {
		var l boltLock
		if old != nil && json.Unmarshal(old, &l) == nil && time.Now().Before(l.Until) {
			return nil, ErrLocked
		}
		return json.Marshal(boltLock{Token: token, Until: time.Now().Add(ttl)})
	})
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return func() {
		_ = s.Update(locksBucket, name, func(old []byte) ([]byte, error) {
			var l boltLock
			if old == nil || json.Unmarshal(old, &l) != nil || l.Token != token {
				return old, nil // expired and taken by somebody else
			}
			return nil, nil
		})
	}, nil
}

// Close does nothing: the file is opened per transaction.
func (s *Bolt) Close() error { return nil }

var _ Store = (*Bolt)(nil)
