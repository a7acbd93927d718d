package metrics

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Other is the domain label of everything not given a label of its own
// (DESIGN.md invariant 6).
const Other = "other"

// NullSender is the domain label of inbound mail from the null reverse-path
// (MAIL FROM:<>, bounces).
const NullSender = "<>"

// provider is one MX host suffix and the label of the domains it hosts.
type provider struct {
	suffix string // with a leading dot: ".google.com"
	name   string
}

// labeler gives domains their label value: listed domains always their
// own; then the busiest top domains their own (a slot); then a provider's
// name when an MX host ends in its suffix; else Other. Provider-hosted
// domains never take a slot: the slots are kept for domains that run their
// own MX. At most len(listed)+top+len(providers)+1 values are in use at
// once.
//
// Busiest: observations are counted per domain in a bounded table
// (candidates; when full, the least-seen domain without a slot leaves
// it). Free slots go to domains as they come. Once all are taken, a domain
// seen at least minPromote times and twice as often as the quietest slot
// holder takes that slot; the caller drops the series of the domain that
// lost it. A flood of domains seen once each never moves a slot.
type labeler struct {
	listed    map[string]bool
	providers []provider // longest suffix first
	top       int

	mu     sync.Mutex
	slots  map[string]bool
	counts map[string]int64 // candidates, slot holders included
}

// minPromote is how often a domain must have been seen to take a slot
// from another.
const minPromote = 10

// candidates bounds the count table.
func (l *labeler) candidates() int { return max(10*l.top, 1000) }

func newLabeler(o Options) *labeler {
	l := &labeler{listed: map[string]bool{}, top: o.TopDomains, slots: map[string]bool{}, counts: map[string]int64{}}
	for _, d := range o.Domains {
		if d = normalise(d); d != "" {
			l.listed[d] = true
		}
	}
	for suffix, name := range o.Providers {
		suffix = normalise(suffix)
		if suffix == "" || name == "" {
			continue
		}
		if !strings.HasPrefix(suffix, ".") {
			suffix = "." + suffix
		}
		l.providers = append(l.providers, provider{suffix: suffix, name: name})
	}
	// Longest suffix first, so ".mail.protection.outlook.com" wins over
	// ".outlook.com"; ties by suffix, for a fixed order.
	slices.SortFunc(l.providers, func(a, b provider) int {
		return cmp.Or(len(b.suffix)-len(a.suffix), strings.Compare(a.suffix, b.suffix))
	})
	return l
}

// label returns the label value for domain, whose MX hosts are mxs (nil
// when unknown), whether it was folded into a provider or Other, and the
// domain that lost its slot to it, if any ("" otherwise).
func (l *labeler) label(domain string, mxs []string) (value string, folded bool, evicted string) {
	if !utf8.ValidString(domain) { // before ToLower, which would mend it
		return Other, true, ""
	}
	domain = normalise(domain)
	if domain == "" || len(domain) > 253 {
		return Other, true, ""
	}
	if l.listed[domain] {
		return domain, false, ""
	}
	l.mu.Lock()
	if l.slots[domain] {
		l.counts[domain]++
		l.mu.Unlock()
		return domain, false, ""
	}
	l.mu.Unlock()
	if p, ok := l.provider(mxs); ok {
		return p, true, ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.count(domain)
	switch {
	case l.slots[domain]:
		return domain, false, ""
	case len(l.slots) < l.top:
		l.slots[domain] = true
		return domain, false, ""
	}
	if n < minPromote { // the long tail: no scan of the slots
		return Other, true, ""
	}
	if quiet, qn := l.quietestSlot(); quiet != "" && n >= 2*qn {
		delete(l.slots, quiet)
		l.slots[domain] = true
		return domain, false, quiet
	}
	return Other, true, ""
}

// countSample is how many candidates a full table looks at to find one
// to forget.
const countSample = 16

// count adds one observation of domain to the table and returns its
// count. A full table forgets the least seen of a few candidates taken at
// random (map iteration starts at a random place), in constant time: an
// approximate least-frequently-used, as the long tail of destinations
// would make a full scan per new domain the relay's largest cost. Called
// with mu held.
func (l *labeler) count(domain string) int64 {
	if _, ok := l.counts[domain]; !ok && len(l.counts) >= l.candidates() {
		var least string
		var ln int64
		seen := 0
		for d, c := range l.counts {
			if l.slots[d] {
				continue
			}
			if least == "" || c < ln {
				least, ln = d, c
			}
			if seen++; seen == countSample {
				break
			}
		}
		delete(l.counts, least)
	}
	l.counts[domain]++
	return l.counts[domain]
}

// quietestSlot is the slot holder seen least among a few taken at random
// (all of them when the slots are few): constant time, as count's
// candidates. Called with mu held.
func (l *labeler) quietestSlot() (string, int64) {
	var q string
	var qn int64
	seen := 0
	for d := range l.slots {
		if c := l.counts[d]; q == "" || c < qn {
			q, qn = d, c
		}
		if seen++; seen == countSample {
			break
		}
	}
	return q, qn
}

// provider is the name of the first provider (longest suffix first) one
// of mxs belongs to.
func (l *labeler) provider(mxs []string) (string, bool) {
	for _, p := range l.providers {
		for _, mx := range mxs {
			mx = normalise(mx)
			if strings.HasSuffix(mx, p.suffix) || mx == p.suffix[1:] {
				return p.name, true
			}
		}
	}
	return "", false
}

// isProvider reports whether v is a provider's label.
func (l *labeler) isProvider(v string) bool {
	for _, p := range l.providers {
		if p.name == v {
			return true
		}
	}
	return false
}

// values is how many label values l can give at most.
func (l *labeler) values() int {
	names := map[string]bool{}
	for _, p := range l.providers {
		names[p.name] = true
	}
	return len(l.listed) + l.top + len(names) + 1
}

// normalise lowercases and drops the trailing dot.
func normalise(d string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
}
