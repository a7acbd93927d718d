package tlsrptsend

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caliop/relay/tlsrpt"
)

// ErrNoData: no session with the domain was recorded that day; there is
// no report to show or send.
var ErrNoData = errors.New("no TLS sessions recorded")

// Report returns domain's report for the UTC day holding day, from the
// store and the counts not yet flushed. A day not over yet gives the
// report so far.
func (r *Recorder) Report(domain string, day time.Time) (*tlsrpt.Report, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	rng := tlsrpt.Day(day)
	d, err := r.load(dayKey(rng.Start))
	if err != nil {
		return nil, err
	}
	sd := d.Domains[domain]
	if sd == nil {
		return nil, fmt.Errorf("%w with %s on %s (UTC)", ErrNoData, domain, dayKey(rng.Start))
	}
	return r.build(domain, rng, sd), nil
}

// ReportID is the report-id of domain's report of the day starting at
// start: the same for every attempt, so that a receiver can tell a
// report sent again.
func (r *Recorder) ReportID(domain string, start time.Time) string {
	id := dayKey(start) + "." + domain
	if r.submitter != "" {
		id += "@" + r.submitter
	}
	return id
}

// build makes the RFC 8460 §4.4 report of one domain and day: one entry
// per policy, failures grouped by result type, MX and addresses, all in a
// stable order.
func (r *Recorder) build(domain string, rng tlsrpt.DateRange, sd *storedDomain) *tlsrpt.Report {
	rep := &tlsrpt.Report{
		OrganizationName: r.org,
		DateRange:        rng,
		ContactInfo:      r.contact,
		ReportID:         r.ReportID(domain, rng.Start),
		Policies:         []tlsrpt.PolicyResult{},
	}
	for _, sp := range sortedPolicies(sd) {
		pr := tlsrpt.PolicyResult{
			Policy: tlsrpt.Policy{
				Type:   sp.Type,
				String: policyLines(sp.Text),
				Domain: domain,
				MXHost: mxHosts(sp),
			},
			Summary: tlsrpt.Summary{TotalSuccessful: sp.Success},
		}
		for _, f := range sortedFailures(sp) {
			pr.Summary.TotalFailure += f.Count
			pr.FailureDetails = append(pr.FailureDetails, tlsrpt.FailureDetails{
				ResultType:          f.Result,
				SendingMTAIP:        f.SendingIP,
				ReceivingMXHostname: f.MX,
				ReceivingMXHelo:     f.HELO,
				ReceivingIP:         f.ReceivingIP,
				FailedSessionCount:  f.Count,
				FailureReasonCode:   f.Reason,
			})
		}
		rep.Policies = append(rep.Policies, pr)
	}
	return rep
}

func sortedPolicies(sd *storedDomain) []*storedPolicy {
	ps := make([]*storedPolicy, 0, len(sd.Policies))
	for _, p := range sd.Policies {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *storedPolicy) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.MX, b.MX), cmp.Compare(a.Text, b.Text))
	})
	return ps
}

func sortedFailures(sp *storedPolicy) []*storedFailure {
	fs := make([]*storedFailure, 0, len(sp.Failures))
	for _, f := range sp.Failures {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *storedFailure) int {
		return cmp.Or(cmp.Compare(a.Result, b.Result), cmp.Compare(a.MX, b.MX), cmp.Compare(a.ReceivingIP, b.ReceivingIP),
			cmp.Compare(a.SendingIP, b.SendingIP), cmp.Compare(a.HELO, b.HELO))
	})
	return fs
}

// policyLines is the policy-string: the policy's non-empty lines.
func policyLines(text string) []string {
	var lines []string
	for l := range strings.Lines(text) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// mxHosts is the mx-host list: an MTA-STS policy's "mx:" patterns
// (RFC 8461 §3.2), or the host a TLSA policy is for.
func mxHosts(sp *storedPolicy) []string {
	switch sp.Type {
	case tlsrpt.PolicyTLSA:
		if sp.MX != "" {
			return []string{sp.MX}
		}
	case tlsrpt.PolicySTS:
		var mx []string
		for _, l := range policyLines(sp.Text) {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "mx" {
				mx = append(mx, strings.TrimSpace(v))
			}
		}
		return mx
	}
	return nil
}
