package stscache

import (
	"context"
	"hash/fnv"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/tlsrpt"
)

// fetch fetches domain's policy, published under id, and keeps the
// result. Concurrent fetches of one domain share one request.
func (c *Cache) fetch(ctx context.Context, domain, id string) error {
	c.mu.Lock()
	if done, ok := c.inflight[domain]; ok {
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f, ok := c.recentFailure(domain, id); ok {
			return f.err
		}
		return nil
	}
	done := make(chan struct{})
	c.inflight[domain] = done
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.inflight, domain)
		c.mu.Unlock()
		close(done)
	}()

	p, err := c.cfg.Fetch.Fetch(ctx, domain)
	if err != nil {
		c.fail(domain, id, err)
		return err
	}
	c.cfg.Metrics.MTASTSFetch(metrics.STSFetchOK)
	c.keep(domain, id, p)
	return nil
}

// keep caches a freshly fetched policy, or forgets the domain's policy if
// the new one says mode none (RFC 8461 §8.3: how a domain withdraws).
func (c *Cache) keep(domain, id string, p *mtasts.Policy) {
	now := c.cfg.Now()
	c.mu.Lock()
	delete(c.failed, domain)
	if p.Mode == mtasts.ModeNone {
		_, had := c.entries[domain]
		delete(c.entries, domain)
		c.mu.Unlock()
		if had {
			c.cfg.Log.Info("mta-sts policy withdrawn", zap.String("domain", domain), zap.String("id", id))
		}
		if err := c.cfg.Store.Delete(bucket, domain); err != nil {
			c.cfg.Log.Warn("mta-sts cache write failed", zap.String("domain", domain), zap.Error(err))
		}
		return
	}
	e := &entry{Domain: domain, ID: id, Policy: p, Fetched: now, Expires: now.Add(p.MaxAge), Refresh: refreshAt(domain, now, p.MaxAge)}
	c.entries[domain] = e
	c.mu.Unlock()
	c.cfg.Log.Info("mta-sts policy fetched", zap.String("domain", domain), zap.String("id", id), zap.String("mode", string(p.Mode)), zap.Strings("mx", p.MX), zap.Duration("max_age", p.MaxAge))
	if err := c.cfg.Store.Put(bucket, domain, e); err != nil {
		// Still applied from memory; lost only at a restart.
		c.cfg.Log.Warn("mta-sts cache write failed", zap.String("domain", domain), zap.Error(err))
	}
}

// fail remembers a failed fetch and reports it (RFC 8460 §4.3.2).
func (c *Cache) fail(domain, id string, err error) {
	kind := failureKind(err)
	c.cfg.Metrics.MTASTSFetch(fetchResult(kind))
	c.mu.Lock()
	c.failed[domain] = failure{id: id, at: c.cfg.Now(), err: err, kind: kind}
	c.mu.Unlock()
	c.cfg.Log.Warn("mta-sts policy fetch failed", zap.String("domain", domain), zap.String("id", id), zap.String("result", string(kind)), zap.Error(err))
	if c.cfg.Report != nil {
		c.cfg.Report.Record(tlsrpt.Outcome{Domain: domain, Policy: tlsrpt.PolicySTS, Result: kind, Detail: err.Error()})
	}
}

// fetchResult is the result label of a failed fetch of kind.
func fetchResult(kind tlsrpt.ResultType) string {
	switch kind {
	case tlsrpt.STSWebPKIInvalid:
		return metrics.STSWebPKIInvalid
	case tlsrpt.STSPolicyInvalid:
		return metrics.STSInvalid
	}
	return metrics.STSFetchError
}

// refreshAt spreads refreshes over time: a policy is fetched again between
// half and three quarters of its max_age, at a point fixed by the domain
// name, so that policies fetched together are not refreshed together.
func refreshAt(domain string, fetched time.Time, maxAge time.Duration) time.Time {
	h := fnv.New64a()
	h.Write([]byte(domain))
	spread := time.Duration(h.Sum64() % uint64(maxAge/4+1))
	return fetched.Add(maxAge/2 + spread)
}
