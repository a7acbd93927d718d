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
	// Detail is a short reason for a failure ("mx not in policy"). Reports
	// carry the first Detail of each failure group as its
	// failure-reason-code; it never splits a group.
	Detail string

	// The fields below are filled where the producer knows them; empty
	// ones are left out of the report. They keep Outcome comparable.

	// PolicyText is the RFC 8460 §4.4 policy-string, one entry per line:
	// for "sts" the policy as fetched (mtasts.Policy.Text), whose "mx:"
	// lines also give the mx-host list; for "tlsa" the TLSA records in
	// presentation form ("3 1 1 ab12..."). Empty for "no-policy-found".
	PolicyText string
	// ReceivingIP is the MX address connected to (receiving-ip).
	ReceivingIP string
	// SendingIP is Caliop's own address on the session (sending-mta-ip).
	SendingIP string
	// ReceivingHELO is the name the MX gave in its greeting
	// (receiving-mx-helo).
	ReceivingHELO string
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
