package inbound

import "sync"

// OtherDomains is the Stats key that counts the sending domains beyond
// the first MaxStatsDomains, so that a sender inventing domains cannot
// grow the table (DESIGN.md invariant 6). It cannot be a domain: it has
// no dot.
const OtherDomains = "other"

// MaxStatsDomains bounds the distinct keys Stats keeps.
const MaxStatsDomains = 10000

// Stats counts inbound transactions per sending domain, split by whether
// the client's session was TLS, for the metrics to export. A transaction
// is counted when the next hop accepted its MAIL. Safe for concurrent
// use; the zero value is ready.
type Stats struct {
	mu sync.Mutex
	m  map[string]*TLSCounts
}

// TLSCounts is how many transactions came in plaintext and over TLS.
type TLSCounts struct{ Plain, TLS int64 }

// Sessions returns a copy of the counts. Key: the sending (MAIL FROM)
// domain as a lowercase A-label, "" for the null sender, OtherDomains for
// the overflow.
func (s *Stats) Sessions() map[string]TLSCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]TLSCounts, len(s.m))
	for d, c := range s.m {
		out[d] = *c
	}
	return out
}

// add counts one transaction; s may be nil.
func (s *Stats) add(domain string, isTLS bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*TLSCounts{}
	}
	c := s.m[domain]
	if c == nil {
		if len(s.m) >= MaxStatsDomains {
			domain = OtherDomains
		}
		if c = s.m[domain]; c == nil {
			c = &TLSCounts{}
			s.m[domain] = c
		}
	}
	if isTLS {
		c.TLS++
	} else {
		c.Plain++
	}
}
