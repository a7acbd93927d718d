package stscache

import (
	"context"
	"time"

	"github.com/caliop/relay/internal/every"

	"go.uber.org/zap"
)

// Run refreshes cached policies until ctx ends, checking every interval:
// see RefreshDue.
func (c *Cache) Run(ctx context.Context, interval time.Duration) {
	every.Run(ctx, interval, func(ctx context.Context) { c.RefreshDue(ctx) })
}

// RefreshDue makes one pass over the cache: expired policies, and
// failures older than RetryAfter, are dropped,
// and each policy past its refresh time is fetched again (RFC 8461 §5.1:
// senders may refresh proactively), under the id the TXT record now gives
// or the one it had. A failed refresh is tried again RetryAfter later; the
// policy still applies until it expires. It returns how many policies it
// fetched successfully.
func (c *Cache) RefreshDue(ctx context.Context) int {
	now := c.cfg.Now()
	var due []entry
	var expired []string
	c.mu.Lock()
	for d, e := range c.entries {
		switch {
		case !now.Before(e.Expires):
			delete(c.entries, d)
			expired = append(expired, d)
		case !now.Before(e.Refresh):
			due = append(due, *e)
		}
	}
	// Failures and re-fetches matter for RetryAfter only: past it they
	// are forgotten, so that the maps stay as small as the domains
	// failing lately.
	for d, f := range c.failed {
		if now.Sub(f.at) >= c.cfg.RetryAfter {
			delete(c.failed, d)
		}
	}
	for d, t := range c.refetched {
		if now.Sub(t) >= c.cfg.RetryAfter {
			delete(c.refetched, d)
		}
	}
	c.mu.Unlock()
	for _, d := range expired {
		c.cfg.Log.Info("mta-sts policy expired", zap.String("domain", d))
		c.cfg.Store.Delete(bucket, d)
	}
	n := 0
	for _, e := range due {
		if ctx.Err() != nil {
			break
		}
		if c.refetchNow(ctx, e.Domain, e.ID) {
			n++
			continue
		}
		c.mu.Lock()
		if cur := c.entries[e.Domain]; cur != nil && cur.Refresh.Equal(e.Refresh) {
			cur.Refresh = now.Add(c.cfg.RetryAfter)
		}
		c.mu.Unlock()
	}
	return n
}

// Refetch fetches domain's policy again now, at most once per RetryAfter
// per domain. The relay calls it when a delivery under an enforced policy
// failed although the policy id did not change: the domain may have moved
// its MX and updated the policy without a new id. It reports whether the
// policy that applies changed.
func (c *Cache) Refetch(ctx context.Context, domain string) bool {
	domain = normalise(domain)
	now := c.cfg.Now()
	c.mu.Lock()
	if last, ok := c.refetched[domain]; ok && now.Sub(last) < c.cfg.RetryAfter {
		c.mu.Unlock()
		return false
	}
	c.refetched[domain] = now
	var before string
	var id string
	if e := c.entries[domain]; e != nil {
		before, id = e.Policy.Text+string(e.Policy.Mode), e.ID
	}
	c.mu.Unlock()
	if !c.refetchNow(ctx, domain, id) {
		return false
	}
	after := ""
	if e := c.cached(domain); e != nil {
		after = e.Policy.Text + string(e.Policy.Mode)
	}
	return after != before
}

// refetchNow fetches domain's policy under the id of its TXT record, or
// id when the record cannot be had, and reports success.
func (c *Cache) refetchNow(ctx context.Context, domain, id string) bool {
	if rec, err := c.discover(ctx, domain); err == nil {
		id = rec.ID
	}
	return c.fetch(ctx, domain, id) == nil
}
