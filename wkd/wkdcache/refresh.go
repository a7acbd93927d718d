package wkdcache

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caliop/relay/internal/every"

	"go.uber.org/zap"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/wkd"
)

// refresh looks address up now and keeps the outcome.
func (c *Cache) refresh(ctx context.Context, address string) Result {
	now := c.cfg.Now()
	if err := c.loadPin(address); err != nil {
		return Result{Address: address, State: StateUnknown, Err: err}
	}
	l, err := c.cfg.WKD.Lookup(ctx, address)
	e := &entry{Address: address, Fetched: now}
	switch {
	case err == nil:
		c.withKey(e, l, now)
	case errors.Is(err, wkd.ErrNoKey):
		e.State, e.Err, e.Expires = StateNoKey, err.Error(), now.Add(c.cfg.NoKeyTTL)
	default:
		// Never "no key": an attacker who blocks the lookup must not
		// learn that, nor make it last.
		e.State, e.Err, e.Expires = StateUnknown, err.Error(), now.Add(c.cfg.UnknownTTL)
	}
	c.cfg.Metrics.WKDLookup(lookupResult(e.State), c.cfg.Now().Sub(now))
	if errors.Is(err, wkd.ErrNoDirectory) {
		// The answer holds for the domain: kept once for all its
		// addresses, in memory (two DNS answers are cheap to ask again).
		c.mu.Lock()
		c.noDir[domainOf(address)] = domainEntry{err: e.Err, expires: e.Expires}
		c.mu.Unlock()
		return e.result(false)
	}
	c.mu.Lock()
	c.entries[address] = e
	c.mu.Unlock()
	// Keys are kept across restarts; a no-key answer only in cluster
	// mode, where it spares the other replicas the lookup: alone, a
	// synced write per new address would cost more than the lookup.
	if e.State == StateKey || e.State == StateChanged || e.State == StateNoKey && c.cfg.Shared {
		if err := c.cfg.Store.Put(bucket, address, e); err != nil {
			c.cfg.Log.Warn("wkd cache write failed", zap.String("address", address), zap.Error(err))
		}
	}
	return e.result(false)
}

// lookupResult is the result label of a lookup that ended in state: a
// key found is "key" even when the pin refuses it.
func lookupResult(s State) string {
	switch s {
	case StateKey, StateChanged:
		return metrics.WKDKey
	case StateNoKey:
		return metrics.WKDNoKey
	}
	return metrics.WKDUnknown
}

// withKey records a key found for e.Address, after the pin check.
func (c *Cache) withKey(e *entry, l wkd.Lookup, now time.Time) {
	var buf bytes.Buffer
	if err := l.Key.Serialize(&buf); err != nil {
		e.State, e.Err, e.Expires = StateUnknown, "serialize key: "+err.Error(), now.Add(c.cfg.UnknownTTL)
		return
	}
	e.State, e.Key, e.key, e.Fingerprint, e.Expires = StateKey, buf.Bytes(), l.Key, l.Fingerprint, now.Add(c.cfg.KeyTTL)
	c.mu.Lock()
	old, pinned := c.pins[e.Address]
	c.mu.Unlock()
	switch {
	case !pinned:
		c.pin(e, now)
	case old.Fingerprint == l.Fingerprint:
	case pinGone(old, l, e.Address, now):
		c.cfg.Log.Info("wkd key replaced, old key expired or revoked", zap.String("address", e.Address), zap.String("old", old.Fingerprint), zap.String("new", l.Fingerprint))
		c.pin(e, now)
	default:
		c.changes.Add(1)
		c.cfg.Metrics.WKDKeyChange()
		c.cfg.Log.Warn("wkd key changed while the pinned key is still valid", zap.String("address", e.Address), zap.String("pinned", old.Fingerprint), zap.String("new", l.Fingerprint), zap.Bool("accepted", c.cfg.AcceptKeyChange))
		if c.cfg.AcceptKeyChange {
			c.pin(e, now)
			return
		}
		// Keep encrypting to the pinned key: refusing the new one must
		// not send the mail in clear.
		e.State, e.Err = StateChanged, "key "+l.Fingerprint+" replaced the pinned key "+old.Fingerprint+" which is neither expired nor revoked; encrypting to the pinned key"
		e.Key, e.key, e.Fingerprint = old.Key, parseKey(old.Key), old.Fingerprint
		if e.key == nil {
			e.State, e.Err = StateUnknown, "pinned key unreadable; "+e.Err
		}
	}
}

// pinGone reports whether the pinned key may be replaced: it expired, or
// the directory now serves it revoked.
func pinGone(old pin, l wkd.Lookup, address string, now time.Time) bool {
	for _, r := range l.Rejected {
		if strings.Contains(r, old.Fingerprint) && strings.Contains(strings.ToLower(r), "revoked") {
			return true
		}
	}
	_, _, err := wkd.Select(old.Key, address, now)
	return err != nil
}

func (c *Cache) pin(e *entry, now time.Time) {
	p := pin{Fingerprint: e.Fingerprint, Key: e.Key, Since: now}
	c.mu.Lock()
	c.pins[e.Address] = p
	c.mu.Unlock()
	if err := c.cfg.Store.Put(pinsBucket, e.Address, p); err != nil {
		c.cfg.Log.Warn("wkd pin write failed", zap.String("address", e.Address), zap.Error(err))
	}
}

// Run refreshes keys in the background until ctx ends: each known key is
// looked up again once three quarters of its lifetime have passed, so a
// sender rarely waits for a lookup; expired entries are dropped.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	every.Run(ctx, interval, func(ctx context.Context) { c.RefreshDue(ctx) })
}

// RefreshDue makes one pass; it returns how many keys it looked up.
func (c *Cache) RefreshDue(ctx context.Context) int {
	now := c.cfg.Now()
	var due []string
	c.mu.Lock()
	for d, e := range c.noDir {
		if !now.Before(e.expires) {
			delete(c.noDir, d)
		}
	}
	for a, e := range c.entries {
		switch {
		case !now.Before(e.Expires):
			delete(c.entries, a)
		case e.State == StateKey && now.After(e.Fetched.Add(c.cfg.KeyTTL*3/4)):
			due = append(due, a)
		}
	}
	c.mu.Unlock()
	for _, a := range due {
		if ctx.Err() != nil {
			break
		}
		c.mu.Lock()
		old := c.entries[a]
		c.mu.Unlock()
		if r := c.refresh(ctx, a); r.State == StateUnknown && old != nil {
			// Keep using the key we have until it expires (the
			// store still holds it: unknown is not written).
			c.mu.Lock()
			c.entries[a] = old
			c.mu.Unlock()
		}
	}
	return len(due)
}
