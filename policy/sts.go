package policy

import (
	"context"
	"fmt"
	"strings"

	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
)

// STSCache answers which MTA-STS policy applies to a domain;
// *stscache.Cache is one.
type STSCache interface {
	Lookup(ctx context.Context, domain string) stscache.Result
	// Refetch fetches the policy again (rate-limited) and reports
	// whether it changed.
	Refetch(ctx context.Context, domain string) bool
}

// applySTS narrows p under the domain's MTA-STS policy (RFC 8461 §5):
// enforce keeps only the admitted MX hosts and requires a WebPKI-valid
// certificate for each (§4.2); testing changes nothing but is recorded in
// the plan, for reports. MX hosts with DANE are left alone: DANE takes
// precedence (DESIGN.md). p.MXs already carry their requirements.
func (e *Engine) applySTS(ctx context.Context, p Plan) (Plan, error) {
	res := e.STS.Lookup(ctx, p.Domain)
	if res.StoreErr != nil {
		return p, fmt.Errorf("%w: %s: %w", ErrSTSUnavailable, p.Domain, res.StoreErr)
	}
	admitted, excluded := admit(res.Policy, p.MXs)
	if enforced(res) && len(admitted) == 0 {
		// The domain may have moved its MX and updated the policy
		// without a new id: fetch it again, at most once in a while.
		if e.STS.Refetch(ctx, p.Domain) {
			res = e.STS.Lookup(ctx, p.Domain)
			admitted, excluded = admit(res.Policy, p.MXs)
		}
	}
	required := e.STSRequired[p.Domain]
	if res.Policy == nil || res.Policy.Mode == mtasts.ModeNone {
		if required {
			return p, fmt.Errorf("%w: %s: %s", ErrSTSRequired, p.Domain, why(res))
		}
		return p, nil
	}
	p.STS = &STS{Policy: res.Policy, ID: res.ID, Cached: res.Source == stscache.SourceCached, Excluded: excluded}
	if !enforced(res) {
		if required {
			return p, fmt.Errorf("%w: %s: policy %s is in mode %s", ErrSTSRequired, p.Domain, res.ID, res.Policy.Mode)
		}
		return p, nil
	}
	if len(admitted) == 0 {
		return p, fmt.Errorf("%w: %s: policy %s lists %s; MX: %s", ErrSTSNoMX, p.Domain, res.ID, strings.Join(res.Policy.MX, ", "), strings.Join(excluded, ", "))
	}
	dane := false
	for i := range admitted {
		if admitted[i].Require.DANE != nil {
			dane = true
			continue
		}
		admitted[i].Require = stricter(admitted[i].Require, Requirement{Level: Verify})
	}
	p.MXs = admitted
	if !dane {
		p.Source = SourceMTASTS
	}
	return p, nil
}

func enforced(res stscache.Result) bool {
	return res.Policy != nil && res.Policy.Mode == mtasts.ModeEnforce
}

// admit splits mxs into the hosts policy admits, with every host under
// DANE, and the names of the others (RFC 8461 §4.1). Without a policy
// every host is admitted.
func admit(policy *mtasts.Policy, mxs []MX) (admitted []MX, excluded []string) {
	if policy == nil || policy.Mode == mtasts.ModeNone {
		return mxs, nil
	}
	for _, mx := range mxs {
		if mx.Require.DANE != nil || policy.Admits(mx.Host) {
			admitted = append(admitted, mx)
		} else {
			excluded = append(excluded, mx.Host)
		}
	}
	return admitted, excluded
}

// stricter combines two requirements, keeping the stronger of each part.
func stricter(a, b Requirement) Requirement {
	return Requirement{Level: max(a.Level, b.Level), MinTLS: max(a.MinTLS, b.MinTLS), DANE: a.DANE}
}

// why says why no policy applies, for errors.
func why(res stscache.Result) string {
	switch {
	case res.FetchErr != nil:
		return res.FetchErr.Error()
	case res.RecordErr != nil:
		return res.RecordErr.Error()
	case res.Policy != nil:
		return "policy in mode none"
	}
	return "no policy"
}

// Replan is the rule for a delivery that failed on every MX of plan:
// under an enforced MTA-STS policy the domain may have moved its MX
// before a new policy id is seen (RFC 8461 §5.1), so the policy is
// fetched again (rate-limited by the cache) and, if it changed, the new
// plan is returned to try once more.
func (e *Engine) Replan(ctx context.Context, plan Plan) (Plan, bool) {
	if e.STS == nil || !plan.Enforced() || !e.STS.Refetch(ctx, plan.Domain) {
		return plan, false
	}
	p, err := e.Plan(ctx, plan.Domain)
	if err != nil {
		return plan, false
	}
	return p, true
}
