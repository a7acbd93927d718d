package policy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/tlsrpt"
)

// ErrLearned: under learn.mode enforce, no MX host of the domain meets
// the requirement its past deliveries taught (learned.Record); temporary,
// 451 4.7.5.
var ErrLearned = errors.New("learned TLS policy not met")

// LearnedPolicies gives a domain's learned requirement in force;
// *learned.Learner is one.
type LearnedPolicies interface {
	Lookup(domain string) (learned.Record, bool)
}

// Learned is the learned requirement a Plan was made under.
type Learned struct {
	Record learned.Record
	// Enforce: the plan applies it (learn.mode enforce); otherwise a
	// session that would fail it is delivered and counted (report).
	Enforce bool
	// At is when the plan was made, for the policy's age.
	At time.Time
}

// String names the requirement for replies and logs: "learned TLS policy
// verify of example.com since 2026-10-02 (63 days)".
func (l *Learned) String() string {
	r := l.Record
	return fmt.Sprintf("learned TLS policy %s of %s since %s (%d days)", r.Requirement, r.Domain, r.Since.Format(time.DateOnly), int(l.At.Sub(r.Since).Hours()/24))
}

// applyLearned puts a domain's learned requirement on p (README, Learned
// policies). It sits between the published policies and the default: a
// local override or an enforced MTA-STS policy leaves it aside, and an MX
// host with usable TLSA records is DANE's. Under enforce, each other MX
// host must be one of the learned names (or under the same registrable
// domain) and present a WebPKI-valid certificate; a domain that learned
// DANE has no MX host without usable TLSA records. In report, p is only
// marked, for the delivery to count what would have failed.
func (e *Engine) applyLearned(p Plan, now time.Time) (Plan, error) {
	if e.Learned == nil || p.Enforced() {
		return p, nil
	}
	if _, ok := e.Overrides[p.Domain]; ok {
		return p, nil
	}
	rec, ok := e.Learned.Lookup(p.Domain)
	if !ok {
		return p, nil
	}
	p.Learned = &Learned{Record: rec, Enforce: e.LearnEnforce, At: now}
	if !e.LearnEnforce {
		return p, nil
	}
	var kept []MX
	var why []string
	for _, mx := range p.MXs {
		if mx.Require.DANE.Usable() {
			kept = append(kept, mx) // DANE is stronger
			continue
		}
		reason := LearnedViolation(rec, mx)
		if reason == "" {
			mx.Require.Level = max(mx.Require.Level, Verify)
			kept = append(kept, mx)
			continue
		}
		err := fmt.Errorf("%s: %s", p.Learned.String(), reason)
		p.Unusable = append(p.Unusable, Unusable{Host: mx.Host, Result: tlsrpt.ValidationFailure, Err: err})
		why = append(why, mx.Host+": "+reason)
	}
	p.MXs = kept
	if len(kept) == 0 {
		return p, fmt.Errorf("%w: %s: %s", ErrLearned, p.Learned.String(), strings.Join(why, "; "))
	}
	return p, nil
}

// LearnedViolation says why mx cannot meet rec's requirement before any
// connection, "" if it may: a host outside the learned names, or one
// without usable TLSA records for a domain that learned DANE.
func LearnedViolation(rec learned.Record, mx MX) string {
	switch {
	case !rec.Admits(mx.Host):
		return "MX " + mx.Host + " is not among the names learned (" + strings.Join(rec.MX, ", ") + ")"
	case rec.Requirement == learned.DANE && !mx.Require.DANE.Usable():
		return "DANE expected, no usable TLSA records for " + mx.Host
	}
	return ""
}
