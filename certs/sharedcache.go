package certs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme/autocert"

	"github.com/caliop/relay/store"
)

// acmeBucket holds autocert's cache entries (account key, certificates
// with their keys) in a shared store.
const acmeBucket = "acme"

// Defaults of SharedCache.
const (
	// DefaultOrderWait bounds the wait for another replica's order; past
	// it this replica orders itself (a second certificate, never none).
	DefaultOrderWait = 3 * time.Minute
	// orderLockTTL frees the lock of a replica that died while ordering.
	orderLockTTL = 5 * time.Minute
	defaultPoll  = 500 * time.Millisecond
)

// ordered reports whether autocert creates the entry under key by an
// order (certificates, the account key), which one replica only should
// do. HTTP-01 tokens ("<token>+http-01") are written by the ordering
// replica and read by whichever replica the CA's validation reaches: a
// miss there is answered at once. autocert also asks for a legacy
// account key name it never writes.
func ordered(key string) bool {
	return !strings.HasSuffix(key, "+http-01") && key != "acme_account.key"
}

// LockingStore is what SharedCache needs of a store; store.Store is one.
type LockingStore interface {
	Get(bucket, key string, v any) (bool, error)
	Put(bucket, key string, v any) error
	Delete(bucket, key string) error
	Lock(name string, ttl time.Duration) (unlock func(), err error)
}

// SharedCache is an autocert.Cache in a store that replicas share
// (cluster mode). An entry missing from the store is ordered by one
// replica only: the first to miss it takes a lock and lets autocert
// order, until its Put; the others wait for that Put. Renewals are not
// locked: autocert reads the cache before renewing and spreads renewals
// by up to an hour, so a replica finds the certificate another renewed.
//
// HTTP-01 tokens go through the cache, so any replica answers the CA's
// validation; TLS-ALPN-01 challenge certificates stay in the ordering
// replica's memory, so in a cluster that challenge works only if the CA
// reaches that replica.
type SharedCache struct {
	Store LockingStore
	// OrderWait: DefaultOrderWait if zero.
	OrderWait time.Duration
	// Poll is how often a waiting replica reads the store: 500 ms if zero.
	Poll time.Duration

	mu   sync.Mutex
	held map[string]func() // keys this process is ordering
}

var _ autocert.Cache = (*SharedCache)(nil)

// Get returns the entry, or autocert.ErrCacheMiss when this replica is to
// create it. Another replica's order in progress is waited for.
func (c *SharedCache) Get(ctx context.Context, key string) ([]byte, error) {
	wait, poll := c.OrderWait, c.Poll
	if wait <= 0 {
		wait = DefaultOrderWait
	}
	if poll <= 0 {
		poll = defaultPoll
	}
	deadline := time.Now().Add(wait)
	for {
		var data []byte
		found, err := c.Store.Get(acmeBucket, key, &data)
		if err != nil {
			return nil, fmt.Errorf("acme cache: %w", err)
		}
		if found {
			return data, nil
		}
		if !ordered(key) || c.holding(key) {
			return nil, autocert.ErrCacheMiss
		}
		unlock, err := c.Store.Lock("acme/"+key, orderLockTTL)
		if err == nil {
			c.hold(key, unlock)
			return nil, autocert.ErrCacheMiss
		}
		if !errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("acme cache: %w", err)
		}
		if time.Now().After(deadline) {
			return nil, autocert.ErrCacheMiss // the other order hangs: order too
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// Peek returns the entry without taking part in orders: a miss is
// autocert.ErrCacheMiss at once. For readers that order nothing
// (certificate expiry metrics, `caliop records`).
func (c *SharedCache) Peek(_ context.Context, key string) ([]byte, error) {
	var data []byte
	found, err := c.Store.Get(acmeBucket, key, &data)
	if err != nil {
		return nil, fmt.Errorf("acme cache: %w", err)
	}
	if !found {
		return nil, autocert.ErrCacheMiss
	}
	return data, nil
}

// Put stores the entry and ends this replica's order of it.
func (c *SharedCache) Put(_ context.Context, key string, data []byte) error {
	err := c.Store.Put(acmeBucket, key, data)
	c.mu.Lock()
	unlock := c.held[key]
	delete(c.held, key)
	c.mu.Unlock()
	if unlock != nil {
		unlock()
	}
	if err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	return nil
}

// Delete removes the entry.
func (c *SharedCache) Delete(_ context.Context, key string) error {
	if err := c.Store.Delete(acmeBucket, key); err != nil {
		return fmt.Errorf("acme cache: %w", err)
	}
	return nil
}

func (c *SharedCache) holding(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.held[key]
	return ok
}

func (c *SharedCache) hold(key string, unlock func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held == nil {
		c.held = map[string]func(){}
	}
	c.held[key] = unlock
}
