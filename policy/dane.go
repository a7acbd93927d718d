package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/tlsrpt"
)

// Errors of the DANE step.
var (
	// ErrDANELookup: the TLSA lookup failed for every MX host (SERVFAIL,
	// bogus); temporary, 451 4.7.5. RFC 7672 §2.2: never fall back.
	ErrDANELookup = errors.New("TLSA lookup failed for every MX host")
	// ErrDANERequired: local configuration requires DANE and an MX host
	// has no usable TLSA records; temporary, 451 4.7.5.
	ErrDANERequired = errors.New("DANE required by local configuration")
)

// Unusable is an MX host that may not be tried, and why.
type Unusable struct {
	Host   string
	Result tlsrpt.ResultType
	Err    error
}

// applyDANE looks up TLSA records for each MX host whose address records
// are DNSSEC-secure (RFC 7672 §2.2) and gives those with a secure RRset a
// DANE requirement. An MX host whose TLSA lookup fails is removed from
// the plan (§2.2: it is unusable; no weaker policy applies to it).
func (e *Engine) applyDANE(ctx context.Context, p Plan) (Plan, error) {
	if e.TLSA == nil {
		return p, nil
	}
	var kept []MX
	for _, mx := range p.MXs {
		d, err := e.daneFor(ctx, p, mx.Host)
		if err != nil {
			p.Unusable = append(p.Unusable, Unusable{Host: mx.Host, Result: tlsrpt.DNSSECInvalid, Err: err})
			p.outcome(mx.Host, tlsrpt.DNSSECInvalid, err)
			continue
		}
		if d != nil && !d.Usable() {
			// RFC 7672 §2.2: TLS is still required; RFC 8460 §4.3.2:
			// every record unusable is "tlsa-invalid".
			p.outcome(mx.Host, tlsrpt.TLSAInvalid, fmt.Errorf("no usable TLSA record at %s", d.Set.Name))
		}
		if d != nil {
			mx.Require = Requirement{Level: Encrypt, MinTLS: mx.Require.MinTLS, DANE: d}
			p.Source = SourceDANE
		}
		kept = append(kept, mx)
	}
	p.MXs = kept
	if len(kept) == 0 {
		var why []string
		for _, u := range p.Unusable {
			why = append(why, u.Err.Error())
		}
		return p, fmt.Errorf("%w: %s: %s", ErrDANELookup, p.Domain, strings.Join(why, "; "))
	}
	return p, nil
}

// daneFor returns the DANE requirement of one MX host, nil when DANE does
// not apply to it (its addresses or its TLSA RRset are not secure, or it
// has no TLSA records), or an error when the host is unusable.
func (e *Engine) daneFor(ctx context.Context, p Plan, host string) (*DANE, error) {
	_, res, err := e.DNS.LookupIP(ctx, host)
	if err != nil || !res.Authentic {
		// An address failure is the delivery's to report; an insecure
		// address means no DANE (RFC 7672 §2.2.2).
		return nil, nil
	}
	set, err := dane.Lookup(ctx, e.TLSA, host, res.Canonical)
	if err != nil {
		return nil, err
	}
	if !set.Secure || len(set.Records) == 0 {
		return nil, nil
	}
	names := []string{set.Name}
	if host != set.Name {
		names = append(names, host)
	}
	if p.MXSecure && p.Domain != host {
		// RFC 7672 §3.2.2: the next-hop domain too, when the MX
		// records that led to the host were secure.
		names = append(names, p.Domain)
	}
	return &DANE{Set: set, Names: names}, nil
}

// checkRequired applies the "dane" override level (required): every MX
// must have usable TLSA records.
func checkRequired(p Plan, required bool) (Plan, error) {
	if !required {
		return p, nil
	}
	var missing []string
	for _, mx := range p.MXs {
		if !mx.Require.DANE.Usable() {
			missing = append(missing, mx.Host)
		}
	}
	if len(missing) == 0 {
		return p, nil
	}
	err := fmt.Errorf("%w: %s: no usable DNSSEC-secure TLSA records for %s", ErrDANERequired, p.Domain, strings.Join(missing, ", "))
	for _, h := range missing {
		p.outcome(h, tlsrpt.DANERequired, err)
	}
	return p, err
}

// outcome adds a DANE outcome of the decision (RFC 8460 §4.3.2).
func (p *Plan) outcome(host string, r tlsrpt.ResultType, err error) {
	p.Outcomes = append(p.Outcomes, tlsrpt.Outcome{Domain: p.Domain, Policy: tlsrpt.PolicyTLSA, MX: host, Result: r, Detail: err.Error()})
}
