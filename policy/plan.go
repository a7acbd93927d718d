package policy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"

	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/resolver"
)

// Errors of Plan, by what the caller should answer.
var (
	// ErrNullMX: the domain publishes a null MX (RFC 7505 §3); permanent,
	// answer 556 5.1.10.
	ErrNullMX = errors.New("domain accepts no mail (null MX, RFC 7505)")
	// ErrNoDomain: the domain does not exist (NXDOMAIN); permanent, 550 5.1.2.
	ErrNoDomain = errors.New("domain does not exist")
	// ErrNoMailHost: no MX and no address for an implicit MX
	// (RFC 5321 §5.1); permanent, 550 5.1.2.
	ErrNoMailHost = errors.New("domain has no MX and no address")
	// ErrDNS: a lookup failed (SERVFAIL, timeout); temporary, 451 4.4.3.
	ErrDNS = errors.New("DNS lookup failed")
	// ErrSTSNoMX: the domain's enforced MTA-STS policy admits none of its
	// MX hosts (RFC 8461 §5.1); temporary, 451 4.7.5.
	ErrSTSNoMX = errors.New("MTA-STS policy admits none of the MX hosts")
	// ErrSTSRequired: local configuration requires an enforced MTA-STS
	// policy and none applies; temporary, 451 4.7.5.
	ErrSTSRequired = errors.New("MTA-STS policy required by local configuration, none in force")
)

// Source names the rule a Plan came from.
type Source string

// The sources known today. DANE will add its own.
const (
	SourceDefault  Source = "default"
	SourceOverride Source = "override"
	// SourceMTASTS: an enforced MTA-STS policy chose the MX hosts.
	SourceMTASTS Source = "mta-sts"
)

// MX is one host that may receive the domain's mail.
type MX struct {
	Host string // lowercase A-label, no trailing dot
	Pref uint16
	// Implicit is set when the domain has no MX and its own address
	// records serve (RFC 5321 §5.1).
	Implicit bool
	Require  Requirement
}

// Plan is the outcome of the decision for one destination domain: the MX
// hosts to try, in order, and what each must prove.
type Plan struct {
	Domain string
	Source Source
	MXs    []MX
	// STS is the MTA-STS policy in force (enforce or testing), if any.
	STS *STS
}

// STS is the MTA-STS policy a Plan was made under.
type STS struct {
	Policy *mtasts.Policy
	ID     string
	Cached bool // applied from the cache (not fetched for this plan)
	// Excluded are the MX hosts an enforced policy does not admit: never
	// tried. In testing mode they are tried and reported.
	Excluded []string
}

// Enforced reports whether p's MX hosts are bound by an enforced policy.
func (p Plan) Enforced() bool {
	return p.STS != nil && p.STS.Policy.Mode == mtasts.ModeEnforce
}

// Resolver is the DNS the engine needs.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]resolver.MX, resolver.Result, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, resolver.Result, error)
}

// Engine makes Plans. Its fields are set once and read concurrently.
type Engine struct {
	DNS Resolver
	// Default applies to domains without an override (Encrypt or Verify).
	Default Requirement
	// Overrides are local per-domain rules, keyed by lowercase A-label.
	// An override may make a published policy stricter, never weaker,
	// except Level None, which alone allows plaintext and skips MTA-STS.
	Overrides map[string]Requirement
	// STSRequired lists domains (lowercase A-labels) whose mail must go
	// under an enforced MTA-STS policy (override level "mta-sts").
	STSRequired map[string]bool
	// STS is the MTA-STS policy cache; nil disables MTA-STS.
	STS STSCache
	// Shuffle randomises hosts of equal preference (RFC 5321 §5.1);
	// nil means math/rand.
	Shuffle func(n int, swap func(i, j int))
}

// Plan decides how mail for domain must be delivered.
func (e *Engine) Plan(ctx context.Context, domain string) (Plan, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	p := Plan{Domain: domain, Source: SourceDefault}
	req := e.Default
	if o, ok := e.Overrides[domain]; ok {
		p.Source, req = SourceOverride, o
	}
	mxs, err := e.hosts(ctx, domain)
	if err != nil {
		return p, err
	}
	for i := range mxs {
		mxs[i].Require = req
	}
	p.MXs = mxs
	if e.STS == nil || p.Source == SourceOverride && req.Level == None {
		return p, nil
	}
	return e.applySTS(ctx, p, mxs)
}

// hosts lists the MX hosts in the order to try: by preference, shuffled
// among equals, or the implicit MX.
func (e *Engine) hosts(ctx context.Context, domain string) ([]MX, error) {
	recs, _, err := e.DNS.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return nil, fmt.Errorf("%w: %s", ErrNoDomain, domain)
	case err != nil:
		return nil, fmt.Errorf("%w: MX %s: %w", ErrDNS, domain, err)
	}
	if len(recs) == 0 {
		return e.implicit(ctx, domain)
	}
	var out []MX
	null := false
	for _, r := range recs {
		host := strings.ToLower(strings.TrimSuffix(r.Host, "."))
		if host == "" {
			// RFC 7505 §3: "." as the exchange is a null MX. Beside
			// real MX records it is meaningless and skipped.
			null = true
			continue
		}
		if !slices.ContainsFunc(out, func(m MX) bool { return m.Host == host }) {
			out = append(out, MX{Host: host, Pref: r.Pref})
		}
	}
	if len(out) == 0 && null {
		return nil, fmt.Errorf("%w: %s", ErrNullMX, domain)
	}
	slices.SortStableFunc(out, func(a, b MX) int { return int(a.Pref) - int(b.Pref) })
	e.shuffleEqual(out)
	return out, nil
}

// implicit applies RFC 5321 §5.1: without MX records, the domain itself is
// the MX if it has an address.
func (e *Engine) implicit(ctx context.Context, domain string) ([]MX, error) {
	addrs, _, err := e.DNS.LookupIP(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return nil, fmt.Errorf("%w: %s", ErrNoDomain, domain)
	case err != nil:
		return nil, fmt.Errorf("%w: address of %s: %w", ErrDNS, domain, err)
	case len(addrs) == 0:
		return nil, fmt.Errorf("%w: %s", ErrNoMailHost, domain)
	}
	return []MX{{Host: domain, Implicit: true}}, nil
}

func (e *Engine) shuffleEqual(mxs []MX) {
	shuffle := e.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	for i := 0; i < len(mxs); {
		j := i + 1
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		if j-i > 1 {
			group := mxs[i:j]
			shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		}
		i = j
	}
}
