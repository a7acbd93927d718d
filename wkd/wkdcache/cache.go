// Package wkdcache keeps the outcome of WKD lookups per recipient address
// (draft-koch-openpgp-webkey-service) in memory and in the embedded store,
// and pins the first key seen for each address (trust on first use).
//
// Three states, three lifetimes: a key (a day, refreshed in the
// background before it expires), no key (hours: the directory said 404 or
// served nothing usable), and unknown (minutes, memory only: the network
// or the server failed, which is never taken for "no key").
package wkdcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"go.uber.org/zap"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/wkd"
)

// Buckets of the store.
const (
	bucket     = "wkd"
	pinsBucket = "wkd-pins"
)

// State is what is known of an address.
type State string

// The states.
const (
	StateKey     State = "key"     // a usable key
	StateNoKey   State = "no-key"  // the directory has no usable key
	StateUnknown State = "unknown" // the lookup failed; try again later
	// StateChanged: the directory serves a new key while the pinned one
	// is neither expired nor revoked, and the policy refuses the change.
	// Key is the pinned key, which mail keeps being encrypted to: a
	// changed WKD answer never turns encryption off.
	StateChanged State = "key-changed"
)

// Looker performs WKD lookups; *wkd.Client is one.
type Looker interface {
	Lookup(ctx context.Context, address string) (wkd.Lookup, error)
}

// Store persists entries; store.Store is one.
type Store interface {
	Get(bucket, key string, v any) (bool, error)
	Put(bucket, key string, v any) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// Config is what a Cache needs. WKD and Store are required.
type Config struct {
	WKD   Looker
	Store Store
	Log   *zap.Logger
	Now   func() time.Time
	// Lifetimes; defaults 24h, 6h and 5m.
	KeyTTL, NoKeyTTL, UnknownTTL time.Duration
	// AcceptKeyChange uses a new key that replaced a pinned one still
	// valid (neither expired nor revoked); otherwise the new key is not
	// used until the operator removes the pin. Either way it is logged
	// and counted.
	AcceptKeyChange bool
	// Shared says that other replicas write to Store (cluster mode): an
	// address missing from memory is looked for in the store, and its pin
	// is read again before a lookup's key is taken. A store that cannot
	// be read makes the address unknown.
	Shared bool
	// Metrics counts lookups by result, their latency and key changes;
	// nil: none.
	Metrics *metrics.Metrics
}

// Result is what is known of one address.
type Result struct {
	Address     string
	State       State
	Key         *openpgp.Entity // with StateKey; the pinned key with StateChanged
	Fingerprint string
	Cached      bool      // from the cache, no lookup now
	Expires     time.Time // when it will be looked up again
	Err         error     // why unknown, no key, or changed
}

// entry is one address as stored.
type entry struct {
	Address     string    `json:"address"`
	State       State     `json:"state"`
	Key         []byte    `json:"key,omitempty"` // binary public key
	Fingerprint string    `json:"fingerprint,omitempty"`
	Err         string    `json:"error,omitempty"`
	Fetched     time.Time `json:"fetched"`
	Expires     time.Time `json:"expires"`
	key         *openpgp.Entity
}

// pin is the first key seen for an address.
type pin struct {
	Fingerprint string    `json:"fingerprint"`
	Key         []byte    `json:"key"`
	Since       time.Time `json:"since"`
}

// Cache is safe for concurrent use.
type Cache struct {
	cfg     Config
	changes atomic.Int64

	mu      sync.Mutex
	entries map[string]*entry
	pins    map[string]pin
	// noDir holds the domains with no directory at all (wkd.ErrNoDirectory),
	// for NoKeyTTL: every address of such a domain is "no key" without a
	// lookup, and without an entry of its own.
	noDir map[string]domainEntry
}

// domainEntry is what is known of a whole domain.
type domainEntry struct {
	err     string
	expires time.Time
}

// Open loads the store and returns the cache.
func Open(cfg Config) (*Cache, error) {
	if cfg.WKD == nil || cfg.Store == nil {
		return nil, errors.New("wkdcache: WKD and Store are required")
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.KeyTTL = cmpOr(cfg.KeyTTL, 24*time.Hour)
	cfg.NoKeyTTL = cmpOr(cfg.NoKeyTTL, 6*time.Hour)
	cfg.UnknownTTL = cmpOr(cfg.UnknownTTL, 5*time.Minute)
	c := &Cache{cfg: cfg, entries: map[string]*entry{}, pins: map[string]pin{}, noDir: map[string]domainEntry{}}
	now := cfg.Now()
	err := cfg.Store.ForEach(bucket, func(k string, v []byte) error {
		var e entry
		if json.Unmarshal(v, &e) != nil || !now.Before(e.Expires) {
			return nil
		}
		if e.State == StateKey || e.State == StateChanged {
			if e.key = parseKey(e.Key); e.key == nil {
				return nil
			}
		}
		c.entries[k] = &e
		return nil
	})
	if err == nil {
		err = cfg.Store.ForEach(pinsBucket, func(k string, v []byte) error {
			var p pin
			if json.Unmarshal(v, &p) == nil {
				c.pins[k] = p
			}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("wkdcache: %w", err)
	}
	return c, nil
}

// KeyChanges is how many times a pinned key was replaced by another one.
func (c *Cache) KeyChanges() int64 { return c.changes.Load() }

// Cached returns what is known of address without looking it up: its
// own entry, or else its domain's lack of a directory.
func (c *Cache) Cached(address string) (Result, bool) {
	address = normalise(address)
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[address]; e != nil && now.Before(e.Expires) {
		return e.result(true), true
	}
	if d, ok := c.noDir[domainOf(address)]; ok && now.Before(d.expires) {
		return Result{Address: address, State: StateNoKey, Cached: true, Expires: d.expires, Err: errors.New(d.err)}, true
	}
	return Result{Address: address}, false
}

// Get returns what is known of address, looking it up when the cache has
// nothing current.
func (c *Cache) Get(ctx context.Context, address string) Result {
	if r, ok := c.Cached(address); ok {
		return r
	}
	address = normalise(address)
	if c.cfg.Shared {
		ok, err := c.load(address)
		if err != nil {
			// Not kept: the next message asks the store again.
			return Result{Address: address, State: StateUnknown, Err: err}
		}
		if ok {
			r, _ := c.Cached(address)
			return r
		}
	}
	return c.refresh(ctx, address)
}

func (e *entry) result(cached bool) Result {
	r := Result{Address: e.Address, State: e.State, Key: e.key, Fingerprint: e.Fingerprint, Cached: cached, Expires: e.Expires}
	if e.Err != "" {
		r.Err = errors.New(e.Err)
	}
	return r
}

// domainOf is the domain of a normalised address.
func domainOf(address string) string { return address[strings.LastIndexByte(address, '@')+1:] }

func normalise(address string) string {
	i := strings.LastIndexByte(address, '@')
	if i < 0 {
		return address
	}
	return address[:i+1] + strings.ToLower(strings.TrimSuffix(address[i+1:], "."))
}

func parseKey(b []byte) *openpgp.Entity {
	es, err := openpgp.ReadKeyRing(bytes.NewReader(b))
	if err != nil || len(es) != 1 {
		return nil
	}
	return es[0]
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Len is the number of entries held: lookup results, pinned keys and
// domains without a directory.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries) + len(c.pins) + len(c.noDir)
}
