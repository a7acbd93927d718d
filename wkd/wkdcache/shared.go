package wkdcache

import (
	"errors"
	"fmt"
)

// ErrStoreUnavailable: the shared store (cluster mode) could not be read,
// so neither another replica's answer nor the address's pin is known.
// The address is unknown for now: a key found without its pin could be
// an attacker's replacement.
var ErrStoreUnavailable = errors.New("wkd store unavailable")

// load brings address's entry and pin from the shared store into memory,
// when Config.Shared is set. It reports whether a current entry is now in
// memory; an error means the store could not be read.
func (c *Cache) load(address string) (bool, error) {
	var e entry
	found, err := c.cfg.Store.Get(bucket, address, &e)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	if err := c.loadPin(address); err != nil {
		return false, err
	}
	if !found || e.Address != address || !c.cfg.Now().Before(e.Expires) {
		return false, nil
	}
	if e.State == StateKey {
		if e.key = parseKey(e.Key); e.key == nil {
			return false, nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.entries[address]; cur == nil || cur.Fetched.Before(e.Fetched) {
		c.entries[address] = &e
	}
	return true, nil
}

// loadPin reads address's pin from the shared store, which another
// replica may have set or moved since this one last looked.
func (c *Cache) loadPin(address string) error {
	if !c.cfg.Shared {
		return nil
	}
	var p pin
	found, err := c.cfg.Store.Get(pinsBucket, address, &p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	if found {
		c.mu.Lock()
		c.pins[address] = p
		c.mu.Unlock()
	}
	return nil
}
