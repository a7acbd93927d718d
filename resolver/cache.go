package resolver

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// MaxCacheTTL bounds how long any answer is kept, whatever its TTL, so that
// a changed MX or policy record is seen within the hour.
const MaxCacheTTL = time.Hour

// cache keeps answers for their TTL (RFC 1035 §3.2.1, RFC 2181 §8):
// positive answers for the smallest TTL in the answer section, NXDOMAIN and
// NODATA for the SOA's negative TTL (RFC 2308 §5). Server failures and
// timeouts are never kept, nor is an answer whose TTL is zero. The cache is
// bounded: when full, expired entries are dropped first, then ones not
// read since eviction last looked at them (a sampled CLOCK), so that the
// answers every delivery reads (a provider's MX hosts) outlive the ones a
// single message asked for.
type cache struct {
	max int
	now func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
}

type cacheKey struct {
	name  string // cacheName: lowercase, no trailing dot
	qtype uint16
}

// cacheEntry is one kept answer: the message (never modified once stored),
// its Result and, for NXDOMAIN, the error Exchange returned.
type cacheEntry struct {
	msg     *dns.Msg
	res     Result
	err     error
	expires time.Time
	used    bool // read since evict last sampled it
}

func newCache(max int, now func() time.Time) *cache {
	if now == nil {
		now = time.Now
	}
	return &cache{max: max, now: now, entries: make(map[cacheKey]*cacheEntry)}
}

// get returns the kept answer for k, if any and not expired.
func (c *cache) get(k cacheKey) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[k]
	if e == nil {
		return cacheEntry{}, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, k)
		return cacheEntry{}, false
	}
	e.used = true
	return *e, true
}

// put keeps e.msg for its TTL; an answer with no usable TTL is not kept.
func (c *cache) put(k cacheKey, e cacheEntry) {
	ttl := answerTTL(e.msg)
	if ttl <= 0 {
		return
	}
	now := c.now()
	e.expires = now.Add(min(ttl, MaxCacheTTL))
	// What lookups read: the header and the answer. The authority and
	// additional sections (SOA, OPT) are dropped, a third of a small
	// answer's memory.
	e.msg = &dns.Msg{MsgHdr: e.msg.MsgHdr, Compress: e.msg.Compress, Question: e.msg.Question, Answer: e.msg.Answer}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = &e
}

// evictSample is how many entries evict looks at.
const evictSample = 8

// evict makes room for one entry in constant time. Of a few entries
// taken at random (map iteration starts at a random place), the expired
// ones go; else the one closest to expiry among those not read since
// evict last saw them; else, all having been read, the one closest to
// expiry. Each sampled entry loses its mark, so an entry stays only while
// it keeps being read (a second chance, as in CLOCK). Called with mu held.
func (c *cache) evict(now time.Time) {
	var victim, unused cacheKey
	var soonest, soonestUnused time.Time
	removed, seen := false, 0
	for k, e := range c.entries {
		switch {
		case !now.Before(e.expires):
			delete(c.entries, k)
			removed = true
		case !e.used && (soonestUnused.IsZero() || e.expires.Before(soonestUnused)):
			unused, soonestUnused = k, e.expires
		case soonest.IsZero() || e.expires.Before(soonest):
			victim, soonest = k, e.expires
		}
		e.used = false
		if seen++; seen == evictSample {
			break
		}
	}
	switch {
	case removed:
	case !soonestUnused.IsZero():
		delete(c.entries, unused)
	default:
		delete(c.entries, victim)
	}
}

// answerTTL is how long msg may be kept: the smallest TTL of the answer
// section for a positive answer; for NXDOMAIN or NODATA the smaller of the
// SOA record's TTL and its MINIMUM field (RFC 2308 §5), and zero if the
// authority section holds no SOA (RFC 2308 §5: such an answer is not
// cached).
func answerTTL(msg *dns.Msg) time.Duration {
	if msg.Rcode == dns.RcodeSuccess && len(msg.Answer) > 0 && hasData(msg) {
		ttl := msg.Answer[0].Header().Ttl
		for _, rr := range msg.Answer[1:] {
			ttl = min(ttl, rr.Header().Ttl)
		}
		return time.Duration(ttl) * time.Second
	}
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return time.Duration(min(soa.Hdr.Ttl, soa.Minttl)) * time.Second
		}
	}
	return 0
}

// hasData reports whether the answer holds records of the asked type, not
// only a CNAME chain leading to nothing (which is NODATA for the target).
func hasData(msg *dns.Msg) bool {
	qtype := msg.Question[0].Qtype
	for _, rr := range msg.Answer {
		if rr.Header().Rrtype == qtype {
			return true
		}
	}
	return false
}

// cached reports whether an answer for name and qtype is in the cache.
func (r *Resolver) cached(name string, qtype uint16) bool {
	if r.cache == nil {
		return false
	}
	_, ok := r.cache.get(cacheKey{cacheName(name), qtype})
	return ok
}

// CacheLen is the number of answers the cache holds (at most
// Config.CacheSize); 0 without a cache.
func (r *Resolver) CacheLen() int {
	if r.cache == nil {
		return 0
	}
	r.cache.mu.Lock()
	defer r.cache.mu.Unlock()
	return len(r.cache.entries)
}
