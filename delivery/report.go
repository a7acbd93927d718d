package delivery

import (
	"errors"
	"strings"

	"go.uber.org/zap"

	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/tlsrpt"
)

// report records the outcome of a new connection to mx for TLS-RPT
// (RFC 8460 §4): a session that met the plan's policy, or the result type
// of the failure. Under an MTA-STS policy in testing mode a session the
// policy would have refused is delivered all the same and reported as a
// failure (RFC 8461 §5.2). err is the connect error, c the connection.
func (d *Deliverer) report(plan policy.Plan, mx policy.MX, addr string, c *client, err error) {
	if d.Report == nil {
		return
	}
	o := tlsrpt.Outcome{Domain: plan.Domain, Policy: policyType(plan, mx), MX: mx.Host, PolicyText: policyText(plan, mx), ReceivingIP: hostOf(addr)}
	if c != nil {
		o.SendingIP = hostOf(c.Net.LocalAddr().String())
	}
	var se *stepError
	switch {
	case errors.As(err, &se) && se.result != "":
		o.Result, o.Detail = se.result, se.Error()
	case err != nil:
		return // the network, not TLS: no session to report
	case mx.Require.DANE == nil && plan.STS != nil && !plan.Enforced():
		o.Result, o.Detail = wouldFail(plan.STS, mx.Host, c)
		if o.Result != "" {
			d.log().Info("mta-sts testing: policy would refuse this MX", zap.String("domain", plan.Domain), zap.String("mx", mx.Host), zap.String("result", string(o.Result)), zap.String("reason", o.Detail))
		}
	}
	o.Success = o.Result == ""
	d.Report.Record(o)
}

// wouldFail says why an enforced policy would refuse a connection that a
// testing one let through, or "" if it would not.
func wouldFail(sts *policy.STS, host string, c *client) (tlsrpt.ResultType, string) {
	switch {
	case !sts.Policy.Admits(host):
		return tlsrpt.ValidationFailure, "mx " + host + " not in the MTA-STS policy"
	case c.tls == nil:
		return tlsrpt.StartTLSNotSupported, "plaintext session"
	case c.proved.level < policy.Verify:
		return tlsrpt.Classify(c.verifyErr), c.verifyErr.Error()
	}
	return "", ""
}

// policyType is the RFC 8460 §4.4 policy a session with mx was under.
func policyType(plan policy.Plan, mx policy.MX) tlsrpt.PolicyType {
	switch {
	case mx.Require.DANE != nil:
		return tlsrpt.PolicyTLSA
	case plan.STS != nil:
		return tlsrpt.PolicySTS
	}
	return tlsrpt.PolicyNone
}

// policyText is the RFC 8460 §4.4 policy-string of the session's policy:
// the MTA-STS policy as fetched, or the TLSA records, one per line.
func policyText(plan policy.Plan, mx policy.MX) string {
	switch {
	case mx.Require.DANE != nil:
		recs := make([]string, len(mx.Require.DANE.Set.Records))
		for i, r := range mx.Require.DANE.Set.Records {
			recs[i] = r.String()
		}
		return strings.Join(recs, "\n")
	case plan.STS != nil:
		return plan.STS.Policy.Text
	}
	return ""
}
