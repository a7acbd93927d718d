// Package stscache keeps the MTA-STS (RFC 8461) policies of destination
// domains: it discovers them (TXT record), fetches them (HTTPS), keeps them
// in memory and in the embedded store across restarts, refreshes them
// before they expire and answers, per domain, which policy applies now.
//
// The cache is what makes MTA-STS resist downgrade: once a domain's policy
// is known, an attacker who blocks the TXT lookup or the HTTPS fetch only
// makes Caliop use the cached policy until it expires (RFC 8461 §5.1). It
// sits above package mtasts, which knows the standard but not the relay.
package stscache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// bucket is the store bucket of cached policies, keyed by domain.
const bucket = "mta-sts"

// DefaultRetryAfter is how long a failed fetch for a policy id blocks the
// next one, and the least time between two re-fetches after failures.
const DefaultRetryAfter = 5 * time.Minute

// TXTResolver looks up the discovery record.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error)
}

// Fetcher fetches a domain's policy over HTTPS; *mtasts.Fetcher is one.
type Fetcher interface {
	Fetch(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// Store persists policies; store.Store is one.
type Store interface {
	Get(bucket, key string, v any) (bool, error)
	Put(bucket, key string, v any) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// Config is what a Cache needs. DNS, Fetch and Store are required.
type Config struct {
	DNS   TXTResolver
	Fetch Fetcher
	Store Store
	// Report receives fetch failures, for TLS-RPT; may be nil.
	Report tlsrpt.Recorder
	Log    *zap.Logger      // nil: no logging
	Now    func() time.Time // nil: time.Now
	// Shared says that other replicas write to Store (cluster mode): a
	// domain missing from memory is looked for in the store, and a store
	// that cannot be read makes Lookup answer StoreErr instead of "no
	// policy". Without it memory, loaded at Open, is the whole cache.
	Shared bool
	// RetryAfter: DefaultRetryAfter if zero.
	RetryAfter time.Duration
	// Metrics counts fetches by result and, through
	// Metrics.WatchMTASTSPolicies, exports the cached policies by mode;
	// nil: none.
	Metrics *metrics.Metrics
}

// Source says where a Result's policy came from.
type Source string

// The sources.
const (
	SourceNone    Source = ""        // no policy applies
	SourceFetched Source = "fetched" // fetched during this lookup
	SourceCached  Source = "cached"  // from the cache (memory or store)
)

// Result is the policy that applies to a domain now, and what discovery
// saw on the way.
type Result struct {
	Domain  string
	Policy  *mtasts.Policy // nil: deliver as if the domain had no policy
	ID      string         // the policy's id
	Source  Source
	Fetched time.Time // when the policy was fetched
	Expires time.Time // when it stops applying unless refreshed
	// Record is the discovery record found now ("" if none); RecordErr
	// says why none was usable (no record, DNS failure, syntax).
	Record    string
	RecordErr error
	// FetchErr is the error of a fetch tried or blocked during this
	// lookup; Failure its RFC 8460 result type.
	FetchErr error
	Failure  tlsrpt.ResultType
	// StoreErr (wrapping ErrStoreUnavailable) says that no policy is
	// known because the shared store could not be read: one may be
	// cached there, so the mail must wait.
	StoreErr error
}

// entry is one cached policy, as stored.
type entry struct {
	Domain  string         `json:"domain"`
	ID      string         `json:"id"`
	Policy  *mtasts.Policy `json:"policy"`
	Fetched time.Time      `json:"fetched"`
	Expires time.Time      `json:"expires"`
	// Refresh is when the background refresh fetches it again.
	Refresh time.Time `json:"refresh"`
}

// failure is a fetch that failed, remembered to hold off the next one.
type failure struct {
	id   string
	at   time.Time
	err  error
	kind tlsrpt.ResultType
}

// Cache answers which MTA-STS policy applies to a domain. It is safe for
// concurrent use.
type Cache struct {
	cfg Config

	mu        sync.Mutex
	entries   map[string]*entry
	failed    map[string]failure   // last failed fetch per domain
	refetched map[string]time.Time // last re-fetch after a failure
	inflight  map[string]chan struct{}
	absent    map[string]time.Time // shared mode: when the store last held nothing
}

// Open loads the cached policies from cfg.Store and returns the cache.
// Expired policies are dropped; one that does not decode is dropped and
// logged, never fatal.
func Open(cfg Config) (*Cache, error) {
	if cfg.DNS == nil || cfg.Fetch == nil || cfg.Store == nil {
		return nil, errors.New("stscache: DNS, Fetch and Store are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	c := &Cache{
		cfg:       cfg,
		entries:   make(map[string]*entry),
		failed:    make(map[string]failure),
		refetched: make(map[string]time.Time),
		inflight:  make(map[string]chan struct{}),
		absent:    make(map[string]time.Time),
	}
	now := cfg.Now()
	var stale []string
	err := cfg.Store.ForEach(bucket, func(key string, value []byte) error {
		var e entry
		if err := json.Unmarshal(value, &e); err != nil || e.Policy == nil || e.Domain != key {
			cfg.Log.Warn("mta-sts cache entry dropped", zap.String("domain", key), zap.Error(err))
			stale = append(stale, key)
			return nil
		}
		if !now.Before(e.Expires) {
			stale = append(stale, key)
			return nil
		}
		c.entries[key] = &e
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stscache: %w", err)
	}
	for _, k := range stale {
		cfg.Store.Delete(bucket, k)
	}
	cfg.Metrics.WatchMTASTSPolicies(c.byMode)
	return c, nil
}

// byMode counts the unexpired cached policies by mode.
func (c *Cache) byMode() map[string]int {
	now := c.cfg.Now()
	out := map[string]int{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if now.Before(e.Expires) {
			out[string(e.Policy.Mode)]++
		}
	}
	return out
}

// Lookup returns the policy that applies to domain now (RFC 8461 §5.1).
// It never fails: a discovery or fetch problem yields the cached policy if
// one has not expired, else no policy, and is described in the Result;
// in shared mode, an unreadable store with nothing in memory yields
// StoreErr.
func (c *Cache) Lookup(ctx context.Context, domain string) Result {
	domain = normalise(domain)
	res := Result{Domain: domain}
	serr := c.load(domain, "")
	rec, err := c.discover(ctx, domain)
	if err != nil {
		res.RecordErr = err
		return withStoreErr(c.fromCache(res), serr)
	}
	res.Record = "v=STSv1; id=" + rec.ID
	if e := c.cached(domain); e == nil || e.ID != rec.ID {
		// Another replica may have fetched this id already.
		if err := c.load(domain, rec.ID); err != nil {
			serr = err
		}
	}
	if e := c.cached(domain); e != nil && e.ID == rec.ID {
		return c.fromCache(res)
	}
	// A new id, or nothing cached: fetch, unless this id failed lately.
	if f, ok := c.recentFailure(domain, rec.ID); ok {
		res.FetchErr, res.Failure = f.err, f.kind
		return withStoreErr(c.fromCache(res), serr)
	}
	if err := c.fetch(ctx, domain, rec.ID); err != nil {
		res.FetchErr, res.Failure = err, failureKind(err)
		return withStoreErr(c.fromCache(res), serr)
	}
	// Fetched now: what the domain publishes, whatever the store holds.
	res = c.fromCache(res)
	if res.Policy != nil {
		res.Source = SourceFetched
	}
	return res
}

// discover looks up and selects the _mta-sts record (RFC 8461 §3.1).
func (c *Cache) discover(ctx context.Context, domain string) (mtasts.Record, error) {
	txts, _, err := c.cfg.DNS.LookupTXT(ctx, "_mta-sts."+domain)
	if errors.Is(err, resolver.ErrNXDomain) {
		return mtasts.Record{}, fmt.Errorf("%w: _mta-sts.%s does not exist", mtasts.ErrNoRecord, domain)
	}
	if err != nil {
		return mtasts.Record{}, err
	}
	return mtasts.SelectRecord(txts)
}

// fromCache fills res from the cached entry, if any has not expired.
func (c *Cache) fromCache(res Result) Result {
	if e := c.cached(res.Domain); e != nil {
		res.Policy, res.ID, res.Source, res.Fetched, res.Expires = e.Policy, e.ID, SourceCached, e.Fetched, e.Expires
	}
	return res
}

// cached returns the unexpired entry for domain, or nil.
func (c *Cache) cached(domain string) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[domain]
	if e == nil || !c.cfg.Now().Before(e.Expires) {
		return nil
	}
	return e
}

// recentFailure reports a failed fetch of id less than RetryAfter ago.
func (c *Cache) recentFailure(domain, id string) (failure, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failed[domain]
	if !ok || f.id != id || c.cfg.Now().Sub(f.at) >= c.cfg.RetryAfter {
		return failure{}, false
	}
	return f, true
}

// normalise lowercases and drops the trailing dot.
func normalise(domain string) string {
	return strings.ToLower(strings.TrimSuffix(domain, "."))
}

// failureKind is the RFC 8460 result type of a fetch error.
func failureKind(err error) tlsrpt.ResultType {
	switch {
	case errors.Is(err, mtasts.ErrWebPKI):
		return tlsrpt.STSWebPKIInvalid
	case errors.Is(err, mtasts.ErrPolicyInvalid):
		return tlsrpt.STSPolicyInvalid
	}
	return tlsrpt.STSPolicyFetchError
}

// Len is the number of domains the cache knows something of: policies,
// recent failures and re-fetches.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries) + len(c.failed) + len(c.refetched) + len(c.absent)
}
