// Package store keeps Caliop's small persistent state: cached MTA-STS
// policies, WKD keys and pins, TLS-RPT counts and delivery state, and in
// cluster mode the ACME certificates. Values are JSON in named buckets.
//
// Two stores serve the same interface: Bolt, one embedded bbolt file
// under data_dir (the default), and Redis, shared by every replica of a
// cluster (cluster.redis). Callers keep what they read often in memory;
// the store is for what must survive a restart or be seen by the other
// replicas.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Store is the state shared across restarts (Bolt) or replicas (Redis).
// Every method is safe for concurrent use, also by several processes.
// An error means the store could not be read or written: callers must
// not take it for "absent".
type Store interface {
	// Get decodes the value under key into v and reports whether it
	// existed.
	Get(bucket, key string, v any) (bool, error)
	// Put stores v as JSON under key.
	Put(bucket, key string, v any) error
	// Delete removes key; a missing key is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn with every key and raw JSON value of bucket, in
	// key order. The value is only valid during the call.
	ForEach(bucket string, fn func(key string, value []byte) error) error
	// Update replaces the raw value under key by fn's result, atomically:
	// no other write of that key, by this process or another, comes
	// between fn's read and its write. old is nil when the key is absent;
	// a nil result deletes the key; an error from fn aborts the update
	// and is returned. fn may run more than once.
	Update(bucket, key string, fn func(old []byte) ([]byte, error)) error
	// UpdateEach is Update for each of keys in turn, fn told which. The
	// embedded store makes them one transaction, one write to disk where
	// Update makes one per key; Redis updates key by key. It returns the
	// keys left unwritten, with why: fn's error leaves its key alone and
	// the others go on.
	UpdateEach(bucket string, keys []string, fn func(key string, old []byte) ([]byte, error)) (failed map[string]error)
	// Lock takes the lock called name for at most ttl, unless another
	// holder (in this process or another) has it: then ErrLocked. The
	// returned function releases it early; it does nothing once the ttl
	// has passed and somebody else took the lock.
	Lock(name string, ttl time.Duration) (unlock func(), err error)
	// Check reports whether the store is usable now (readiness).
	Check() error
	// Close releases the store's resources.
	Close() error
}

// ErrLocked: another holder has the lock.
var ErrLocked = errors.New("store: locked by another holder")

// newToken is a random lock owner's name.
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
