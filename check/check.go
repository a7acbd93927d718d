package check

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
)

// DNS is the resolver the diagnosis asks; *resolver.Resolver is one.
type DNS interface {
	LookupMX(ctx context.Context, domain string) ([]resolver.MX, resolver.Result, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, resolver.Result, error)
	LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error)
	LookupTLSA(ctx context.Context, name string) ([]*mdns.TLSA, resolver.Result, error)
}

// Planner decides what delivery requires; *policy.Engine is one.
type Planner interface {
	Plan(ctx context.Context, domain string) (policy.Plan, error)
}

// STS answers which MTA-STS policy applies; *stscache.Cache is one.
type STS interface {
	Lookup(ctx context.Context, domain string) stscache.Result
}

// Prober opens a diagnostic connection; *delivery.Deliverer is one.
type Prober interface {
	Probe(ctx context.Context, host, addr string) (delivery.Probe, error)
}

var (
	_ DNS     = (*resolver.Resolver)(nil)
	_ Planner = (*policy.Engine)(nil)
	_ STS     = (*stscache.Cache)(nil)
	_ Prober  = (*delivery.Deliverer)(nil)
)

// Checker diagnoses destination domains. Everything it talks to is
// injected; its fields are set once and read concurrently.
type Checker struct {
	DNS    DNS
	Engine Planner // the relay's engine, with its MTA-STS cache and TLSA
	STS    STS     // nil: no MTA-STS section in the report
	Prober Prober
	Port   int // destination port, 25
	// Parallel bounds the MX hosts probed at once; 4 if zero.
	Parallel int
	Now      func() time.Time // nil: time.Now
}

// Check diagnoses domain. It never fails: every problem is in the Report.
// ctx bounds the whole diagnosis.
func (c *Checker) Check(ctx context.Context, domain string) Report {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	r := Report{Domain: domain, Checked: c.now()}
	var sts *stscache.Result
	if c.STS != nil {
		// Before Plan, so that a policy fetched now shows as fetched.
		res := c.STS.Lookup(ctx, domain)
		sts, r.MTASTS = &res, stsReport(res)
	}
	plan, planErr := c.Engine.Plan(ctx, domain)
	if planErr == nil {
		r.PolicySource = string(plan.Source)
	}
	r.TLSRPT = c.tlsRPT(ctx, domain)
	r.MX, r.MXError = c.hosts(ctx, domain, plan)
	for i := range r.MX {
		annotate(&r.MX[i], plan, planErr, sts)
	}
	c.inspectAll(ctx, &r, plan)
	judge(&r, planErr)
	return r
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// hosts lists the domain's MX hosts by preference, then name, with the
// hosts of the plan the lookup did not give (an implicit MX).
func (c *Checker) hosts(ctx context.Context, domain string, plan policy.Plan) ([]MX, string) {
	recs, res, err := c.DNS.LookupMX(ctx, domain)
	out := []MX{} // [] in JSON, never null
	add := func(m MX) {
		if !slices.ContainsFunc(out, func(o MX) bool { return o.Host == m.Host }) {
			out = append(out, m)
		}
	}
	for _, rec := range recs {
		host := strings.ToLower(strings.TrimSuffix(rec.Host, "."))
		if host != "" { // RFC 7505: "." is a null MX, not a host
			add(MX{Host: host, Preference: rec.Pref, DNSSEC: res.Authentic})
		}
	}
	for _, m := range plan.MXs {
		add(MX{Host: m.Host, Preference: m.Pref, Implicit: m.Implicit, DNSSEC: plan.MXSecure})
	}
	slices.SortStableFunc(out, func(a, b MX) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(a.Host, b.Host))
	})
	if err != nil {
		return out, err.Error()
	}
	return out, ""
}

// annotate says what the plan makes of m: its requirement, or why it is
// not used.
func annotate(m *MX, plan policy.Plan, planErr error, sts *stscache.Result) {
	if sts != nil && sts.Policy != nil {
		admitted := sts.Policy.Admits(m.Host)
		m.STSAdmitted = &admitted
	}
	m.Verdict = Refused
	i := slices.IndexFunc(plan.MXs, func(p policy.MX) bool { return p.Host == m.Host })
	if i >= 0 && planErr == nil {
		req := plan.MXs[i].Require
		m.req, m.Usable, m.Requirement = &req, true, req.String()
		return
	}
	for _, u := range plan.Unusable {
		if u.Host == m.Host {
			m.Reason = "unusable: " + u.Err.Error()
			return
		}
	}
	if plan.STS != nil && slices.Contains(plan.STS.Excluded, m.Host) {
		m.Reason = "not admitted by MTA-STS policy " + plan.STS.ID + " (mode " + string(plan.STS.Policy.Mode) + ")"
		return
	}
	if planErr != nil {
		m.Reason = "domain refused: " + planErr.Error()
		return
	}
	m.Reason = "not in the plan"
}

// inspectAll looks up and probes every MX host, Parallel at a time.
func (c *Checker) inspectAll(ctx context.Context, r *Report, plan policy.Plan) {
	n := c.Parallel
	if n <= 0 {
		n = 4
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range r.MX {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c.inspect(ctx, &r.MX[i], plan)
		})
	}
	wg.Wait()
}

// judge gives the domain's verdict: the first usable MX host, by
// preference, that passes its requirement decides.
func judge(r *Report, planErr error) {
	if planErr != nil {
		r.Verdict, r.Reason = Refused, planErr.Error()
		return
	}
	var why []string
	for _, m := range r.MX {
		if m.Usable && m.Verdict != Refused {
			r.Verdict, r.Reason = m.Verdict, m.Host+": "+m.Reason
			return
		}
		why = append(why, m.Host+": "+m.Reason)
	}
	r.Verdict = Refused
	r.Reason = "no MX host passes its requirement: " + strings.Join(why, "; ")
	if len(why) == 0 {
		r.Reason = "no MX host"
	}
}
