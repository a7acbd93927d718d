package delivery

import (
	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
)

// EncryptedBody is a Body that can say whether it is PGP/MIME-encrypted,
// for the protection label of the delivered-message series; a Body
// without this method is taken as not encrypted.
type EncryptedBody interface {
	Body
	Encrypted() bool
}

// destination is what the metrics know of plan's domain: its MX hosts
// group it under a provider.
func destination(plan policy.Plan) metrics.Destination {
	mxs := make([]string, 0, len(plan.MXs)+len(plan.Unusable))
	for _, mx := range plan.MXs {
		mxs = append(mxs, mx.Host)
	}
	for _, u := range plan.Unusable {
		mxs = append(mxs, u.Host)
	}
	return metrics.Destination{Domain: plan.Domain, MXs: mxs}
}

// noteSession counts a new session that met mx's requirement.
func (d *Deliverer) noteSession(plan policy.Plan, mx policy.MX, c *client) {
	if d.Metrics == nil {
		return
	}
	d.Metrics.OutboundSession(metrics.Session{
		Destination: destination(plan),
		TLSVersion:  c.proved.version,
		Auth:        authLabel(c),
		Policy:      policyLabel(plan, mx),
	})
}

// authLabel names what a connection proved.
func authLabel(c *client) string {
	switch {
	case c.tls == nil:
		return metrics.AuthNone
	case c.proved.dane:
		return metrics.AuthDANE
	case c.proved.level >= policy.Verify:
		return metrics.AuthPKIX
	}
	return metrics.AuthEncrypted
}

// policyLabel names the policy a session with mx was under, strongest
// first.
func policyLabel(plan policy.Plan, mx policy.MX) string {
	switch {
	case mx.Require.DANE != nil:
		return metrics.PolicyDANE
	case plan.Enforced():
		return metrics.PolicySTSEnforce
	case plan.Source == policy.SourceOverride:
		return metrics.PolicyOverride
	case plan.STS != nil:
		return metrics.PolicySTSTesting
	}
	return metrics.PolicyDefault
}

// protection is the strongest protection of body delivered over c.
func protection(body Body, c *client) string {
	if eb, ok := body.(EncryptedBody); ok && eb.Encrypted() {
		return metrics.ProtectionPGP
	}
	switch auth := authLabel(c); auth {
	case metrics.AuthNone:
		return metrics.ProtectionPlaintext
	case metrics.AuthDANE, metrics.AuthPKIX:
		return metrics.ProtectionAuthenticated
	}
	return metrics.ProtectionTLS
}

// noteOutcome counts the recipients of one message delivered or not:
// replies[i] is recipient i's, classes[i] the failure class of a non-2xx
// one.
func (d *Deliverer) noteOutcome(plan policy.Plan, body Body, c *client, replies []*smtp.SMTPError, classes []string) {
	if d.Metrics == nil {
		return
	}
	dst := destination(plan)
	delivered := 0
	failed := map[string]int{}
	for i, r := range replies {
		if r.Code/100 == 2 {
			delivered++
		} else {
			failed[classes[i]]++
		}
	}
	if delivered > 0 {
		d.Metrics.Delivered(dst, protection(body, c), delivered)
	}
	for class, n := range failed {
		d.Metrics.Failed(dst, class, n)
	}
}

// class is the failure class of f for caliop_delivery_failures_total: its
// RFC 8460 result type for a TLS or policy failure.
func (f *failure) class() string {
	switch f.kind {
	case failPolicy:
		if f.result != "" {
			return string(f.result)
		}
		return metrics.FailurePolicy
	case failDNS:
		return metrics.FailureDNS
	case failNetwork:
		return metrics.FailureNetwork
	case failServer, failFinal:
		return metrics.FailureRefused
	case failMessage:
		if r := f.reply(); r.EnhancedCode[1] == 7 {
			return metrics.FailurePolicy // REQUIRETLS cannot be met
		}
	}
	return metrics.FailureOther
}

func codes(res Result) []int {
	out := make([]int, len(res.Replies))
	for i, r := range res.Replies {
		out[i] = r.Code
	}
	return out
}
