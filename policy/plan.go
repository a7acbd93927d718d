package policy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
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
	// ErrSTSUnavailable: the shared policy store (cluster mode) could not
	// be read and nothing is known in memory, so a cached policy may apply
	// (RFC 8461 §10.2: no downgrade); temporary, 451 4.3.0.
	ErrSTSUnavailable = errors.New("MTA-STS policy store unavailable")
)

// Source names the rule a Plan came from.
type Source string

// The sources known today. DANE will add its own.
const (
	SourceDefault  Source = "default"
	SourceOverride Source = "override"
	// SourceMTASTS: an enforced MTA-STS policy chose the MX hosts.
	SourceMTASTS Source = "mta-sts"
	// SourceDANE: TLSA records govern at least one MX host.
	SourceDANE Source = "dane"
	// SourceTLSRequiredNo: the default, with published policies set
	// aside at the sender's request (RFC 8689 §5).
	SourceTLSRequiredNo Source = "tls-required-no"
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
	// MXSecure: DNSSEC vouched for the MX records (or, for an implicit
	// MX, the domain's addresses).
	MXSecure bool
	// Unusable are MX hosts removed from MXs because their TLSA lookup
	// failed (RFC 7672 §2.2): never tried, reported.
	Unusable []Unusable
	// STS is the MTA-STS policy in force (enforce or testing), if any.
	STS *STS
	// Learned is the learned requirement the plan was made under, if any.
	Learned *Learned
	// Outcomes are the RFC 8460 §4.3.2 outcomes of the decision itself:
	// an MX made unusable by its TLSA lookup (dnssec-invalid), TLSA
	// records all unusable (tlsa-invalid), DANE required but missing
	// (dane-required). Also set when Plan fails. The decision records
	// nothing: its caller does (relay), so that Plan stays pure.
	Outcomes []tlsrpt.Outcome
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

// Enforced reports whether p's MX hosts are bound by an enforced MTA-STS
// policy.
func (p Plan) Enforced() bool {
	return p.STS != nil && p.STS.Policy.Mode == mtasts.ModeEnforce
}

// Authenticated reports whether delivery to mx under p is authenticated
// end to end as RFC 8689 §4.2.1 (REQUIRETLS) asks: the MX records secured
// by DNSSEC and the host by DANE, or the host admitted by an enforced
// MTA-STS policy and WebPKI-valid.
func (p Plan) Authenticated(mx MX) bool {
	if mx.Require.DANE.Usable() {
		return p.MXSecure || p.Enforced()
	}
	return p.Enforced() && mx.Require.Level >= Verify
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
	// TLSA looks up DANE records; nil disables DANE.
	TLSA dane.Resolver
	// DANERequired lists domains whose every MX must have usable TLSA
	// records (override level "dane").
	DANERequired map[string]bool
	// Learned gives the domains' learned requirements (learn.mode report
	// or enforce); nil: none. LearnEnforce applies them (enforce).
	Learned      LearnedPolicies
	LearnEnforce bool
	// Now is the time of the decision, for the learned requirements'
	// ages; nil: time.Now.
	Now func() time.Time

	// Shuffle randomises hosts of equal preference (RFC 5321 §5.1);
	// nil means math/rand.
	Shuffle func(n int, swap func(i, j int))
}

// base lists domain's MX hosts under the default or override
// requirement.
func (e *Engine) base(ctx context.Context, domain string) (Plan, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	p := Plan{Domain: domain, Source: SourceDefault}
	req := e.Default
	if o, ok := e.Overrides[domain]; ok {
		p.Source, req = SourceOverride, o
	}
	mxs, secure, err := e.hosts(ctx, domain)
	if err != nil {
		return p, err
	}
	for i := range mxs {
		mxs[i].Require = req
	}
	p.MXs, p.MXSecure = mxs, secure
	return p, nil
}

// PlanWithoutPolicies is Plan without DANE and MTA-STS, for a message
// whose sender asked for them to be set aside ("TLS-Required: No",
// RFC 8689 §5). TLS is still required as the default or override says.
func (e *Engine) PlanWithoutPolicies(ctx context.Context, domain string) (Plan, error) {
	p, err := e.base(ctx, domain)
	if p.Source == SourceDefault {
		p.Source = SourceTLSRequiredNo
	}
	return p, err
}

// Plan decides how mail for domain must be delivered.
func (e *Engine) Plan(ctx context.Context, domain string) (Plan, error) {
	p, err := e.base(ctx, domain)
	if err != nil {
		return p, err
	}
	if o, ok := e.Overrides[p.Domain]; ok && o.Level == None {
		return p, nil // explicit plaintext: no published policy applies
	}
	// DESIGN.md precedence: DANE per MX, then MTA-STS for the MX hosts
	// without DANE, then the default or override already set.
	if p, err = e.applyDANE(ctx, p); err != nil {
		return p, err
	}
	if e.STS != nil {
		if p, err = e.applySTS(ctx, p); err != nil {
			return p, err
		}
	}
	if p, err = e.applyLearned(p, e.now()); err != nil {
		return p, err
	}
	return checkRequired(p, e.DANERequired[p.Domain])
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// hosts lists the MX hosts in the order to try: by preference, shuffled
// among equals, or the implicit MX; secure reports whether DNSSEC vouched
// for the answer.
func (e *Engine) hosts(ctx context.Context, domain string) (_ []MX, secure bool, _ error) {
	recs, res, err := e.DNS.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return nil, false, fmt.Errorf("%w: %s", ErrNoDomain, domain)
	case err != nil:
		return nil, false, fmt.Errorf("%w: MX %s: %w", ErrDNS, domain, err)
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
		return nil, false, fmt.Errorf("%w: %s", ErrNullMX, domain)
	}
	slices.SortStableFunc(out, func(a, b MX) int { return int(a.Pref) - int(b.Pref) })
	e.shuffleEqual(out)
	return out, res.Authentic, nil
}

// implicit applies RFC 5321 §5.1: without MX records, the domain itself is
// the MX if it has an address.
func (e *Engine) implicit(ctx context.Context, domain string) ([]MX, bool, error) {
	addrs, res, err := e.DNS.LookupIP(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return nil, false, fmt.Errorf("%w: %s", ErrNoDomain, domain)
	case err != nil:
		return nil, false, fmt.Errorf("%w: address of %s: %w", ErrDNS, domain, err)
	case len(addrs) == 0:
		return nil, false, fmt.Errorf("%w: %s", ErrNoMailHost, domain)
	}
	return []MX{{Host: domain, Implicit: true}}, res.Authentic, nil
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
