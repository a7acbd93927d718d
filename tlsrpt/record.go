package tlsrpt

import (
	"cmp"
	"slices"
	"sync"
)

// PolicyType is the RFC 8460 §4.4 "policy-type" a session was made under.
type PolicyType string

// The policy types.
const (
	PolicySTS  PolicyType = "sts"
	PolicyTLSA PolicyType = "tlsa"
	PolicyNone PolicyType = "no-policy-found"
)

// Outcome is one TLS session with an MX of a policy domain, or one policy
// problem met on the way (a policy that could not be fetched).
type Outcome struct {
	Domain string // the policy domain (recipient domain)
	Policy PolicyType
	MX     string // receiving-mx-hostname, "" for a policy problem
	Result ResultType
	// Success: the session met the policy. Result is then empty.
	Success bool
	// Detail is a short reason for a failure ("mx not in policy").
	Detail string
}

// Recorder takes outcomes as they happen. Implementations are safe for
// concurrent use.
type Recorder interface {
	Record(Outcome)
}

// Count is the number of outcomes alike in all but Detail.
type Count struct {
	Domain  string
	Policy  PolicyType
	MX      string
	Result  ResultType // empty for successes
	Success bool
	N       int64
}

// Tally is an in-memory Recorder that counts outcomes, for reports and
// tests.
type Tally struct {
	mu     sync.Mutex
	counts map[Count]int64 // key has N = 0
}

// Record counts o.
func (t *Tally) Record(o Outcome) {
	k := Count{Domain: o.Domain, Policy: o.Policy, MX: o.MX, Result: o.Result, Success: o.Success}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = make(map[Count]int64)
	}
	t.counts[k]++
}

// Counts returns the counts for domain ("" for all), sorted.
func (t *Tally) Counts(domain string) []Count {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Count
	for k, n := range t.counts {
		if domain == "" || k.Domain == domain {
			k.N = n
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(a.Domain, b.Domain), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.MX, b.MX), cmp.Compare(a.Result, b.Result))
	})
	return out
}

// Failures returns how many failures of type r were counted for domain.
func (t *Tally) Failures(domain string, r ResultType) int64 {
	var n int64
	for _, c := range t.Counts(domain) {
		if !c.Success && c.Result == r {
			n += c.N
		}
	}
	return n
}

// Successes returns how many sessions met their policy for domain.
func (t *Tally) Successes(domain string) int64 {
	var n int64
	for _, c := range t.Counts(domain) {
		if c.Success {
			n += c.N
		}
	}
	return n
}
