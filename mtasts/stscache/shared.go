package stscache

import (
	"errors"
	"fmt"
	"time"
)

// absentFor is how long a domain that the shared store did not hold is
// taken as absent before the store is asked again: a bound on the store
// reads for domains without a policy, and on how late a replica learns
// of a policy another replica fetched meanwhile.
const absentFor = 10 * time.Second

// maxAbsent bounds the memory of absent domains.
const maxAbsent = 10000

// ErrStoreUnavailable: the shared store could not be read, so whether a
// cached policy applies is unknown. The caller must defer the mail, never
// deliver as if the domain had no policy (RFC 8461 §10.2: a downgrade).
var ErrStoreUnavailable = errors.New("MTA-STS policy store unavailable")

// load brings domain's policy from the shared store into memory, when
// Config.Shared is set and memory has none with the wanted id (any id if
// id is ""). Another replica may have fetched it. An error means the
// store could not be read.
func (c *Cache) load(domain, id string) error {
	if !c.cfg.Shared {
		return nil
	}
	now := c.cfg.Now()
	c.mu.Lock()
	e := c.entries[domain]
	fresh := e != nil && now.Before(e.Expires) && (id == "" || e.ID == id)
	t, absent := c.absent[domain]
	c.mu.Unlock()
	if fresh || (absent && now.Sub(t) < absentFor && id == "") {
		return nil
	}
	var stored entry
	found, err := c.cfg.Store.Get(bucket, domain, &stored)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !found || stored.Policy == nil || stored.Domain != domain || !now.Before(stored.Expires) {
		if len(c.absent) >= maxAbsent {
			clear(c.absent)
		}
		c.absent[domain] = now
		return nil
	}
	delete(c.absent, domain)
	if cur := c.entries[domain]; cur == nil || !now.Before(cur.Expires) || cur.Fetched.Before(stored.Fetched) {
		c.entries[domain] = &stored
	}
	return nil
}

// withStoreErr marks res unusable when no policy is known and the shared
// store could not say whether one is cached.
func withStoreErr(res Result, err error) Result {
	if err != nil && res.Policy == nil {
		res.StoreErr = err
	}
	return res
}
