package resolver

import (
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestCacheBound checks the cache never holds more than its size, and that
// expired entries are the first to go.
func TestCacheBound(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(2, func() time.Time { return now })
	msg := func(name string, ttl uint32) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		rr, _ := dns.NewRR(name + " 1 IN A 192.0.2.1")
		rr.Header().Ttl = ttl
		m.Answer = []dns.RR{rr}
		return m
	}
	c.put(cacheKey{"short.", dns.TypeA}, cacheEntry{msg: msg("short.", 10)})
	c.put(cacheKey{"long.", dns.TypeA}, cacheEntry{msg: msg("long.", 100)})
	now = now.Add(20 * time.Second)
	c.put(cacheKey{"new.", dns.TypeA}, cacheEntry{msg: msg("new.", 100)})
	if len(c.entries) != 2 {
		t.Fatalf("cache holds %d entries, want 2", len(c.entries))
	}
	for _, name := range []string{"long.", "new."} {
		if _, ok := c.get(cacheKey{name, dns.TypeA}); !ok {
			t.Errorf("%s evicted, want the expired short. to go instead", name)
		}
	}
	c.put(cacheKey{"third.", dns.TypeA}, cacheEntry{msg: msg("third.", 100)})
	if len(c.entries) != 2 {
		t.Errorf("cache holds %d entries after a put when full, want 2", len(c.entries))
	}
	if _, ok := c.get(cacheKey{"third.", dns.TypeA}); !ok {
		t.Error("newest entry missing")
	}
}

// TestCacheKeepsWhatIsRead checks that, under a stream of answers each
// asked for once, an answer read between them stays: eviction takes the
// unread ones first, however old the read one is.
func TestCacheKeepsWhatIsRead(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCache(4, func() time.Time { return now })
	put := func(name string) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		rr, _ := dns.NewRR(name + " 300 IN A 192.0.2.1")
		m.Answer = []dns.RR{rr}
		c.put(cacheKey{name, dns.TypeA}, cacheEntry{msg: m})
	}
	hot := cacheKey{"mx.provider.", dns.TypeA}
	put(hot.name) // the oldest entry: closest to expiry from here on
	for i := range 100 {
		now = now.Add(time.Second)
		if _, ok := c.get(hot); !ok {
			t.Fatalf("%s evicted after %d one-off answers", hot.name, i)
		}
		put("once" + strconv.Itoa(i) + ".example.")
		if len(c.entries) > 4 {
			t.Fatalf("cache holds %d entries, bound 4", len(c.entries))
		}
	}
	if _, ok := c.get(cacheKey{"once99.example.", dns.TypeA}); !ok {
		t.Error("newest entry missing")
	}
}
