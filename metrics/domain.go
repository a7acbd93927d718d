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

// labeler gives domains their label value: listed domains always their own,
// then the first top domains seen their own (a slot, never reassigned),
// then a provider's name when an MX host ends in its suffix, else Other.
// Provider-hosted domains never take a slot: the slots are kept for
// domains that run their own MX. At most len(listed)+top+len(providers)+1
// values ever come out.
type labeler struct {
	listed    map[string]bool
	providers []provider // longest suffix first
	top       int

	mu    sync.Mutex
	slots map[string]bool
}

func newLabeler(o Options) *labeler {
	l := &labeler{listed: map[string]bool{}, top: o.TopDomains, slots: map[string]bool{}}
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
// when unknown), and whether it was folded into a provider or Other.
func (l *labeler) label(domain string, mxs []string) (string, bool) {
	if !utf8.ValidString(domain) { // before ToLower, which would mend it
		return Other, true
	}
	domain = normalise(domain)
	if domain == "" || len(domain) > 253 {
		return Other, true
	}
	if l.listed[domain] {
		return domain, false
	}
	l.mu.Lock()
	slotted := l.slots[domain]
	l.mu.Unlock()
	if slotted {
		return domain, false
	}
	if p, ok := l.provider(mxs); ok {
		return p, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slots[domain] || len(l.slots) < l.top {
		l.slots[domain] = true
		return domain, false
	}
	return Other, true
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
