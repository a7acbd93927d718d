package delivery

import (
	"errors"

	"go.uber.org/zap"

	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/tlsrpt"
)

// Learner counts what each new session proved, for learned TLS
// policies; *learned.Learner is one.
type Learner interface {
	Observe(domain, mx string, authenticated, dane bool)
}

// learn tells the learner what a new TLS session proved, and counts and
// logs a session that fails the plan's learned requirement: under
// learn.mode report it is delivered all the same, under enforce the
// plan's Verify refused it (README, Learned policies).
func (d *Deliverer) learn(plan policy.Plan, mx policy.MX, c *client, err error) {
	if err == nil && c.tls != nil && d.Learn != nil && mx.Require.Level != policy.None {
		d.Learn.Observe(plan.Domain, mx.Host, c.proved.level >= policy.Verify || c.proved.dane, c.proved.dane)
	}
	if plan.Learned == nil {
		return
	}
	result, reason := learnedViolation(plan, mx, c, err)
	if result == "" {
		return
	}
	d.Metrics.LearnedViolation(destination(plan), string(result))
	mode := "report"
	if plan.Learned.Enforce {
		mode = "enforce"
	}
	fields := []zap.Field{zap.String("domain", plan.Domain), zap.String("mx", mx.Host), zap.String("mode", mode),
		zap.String("policy", plan.Learned.String()), zap.String("result", string(result)), zap.String("reason", reason)}
	if c != nil && c.tls != nil && len(c.tls.PeerCertificates) > 0 {
		leaf := c.tls.PeerCertificates[0]
		fields = append(fields, zap.Strings("cert_names", leaf.DNSNames), zap.String("cert_issuer", leaf.Issuer.String()))
	}
	d.log().Warn("learned TLS policy violated", fields...)
}

// learnedViolation is the RFC 8460 result type and the reason a session
// fails plan's learned requirement, "" when it does not.
func learnedViolation(plan policy.Plan, mx policy.MX, c *client, err error) (tlsrpt.ResultType, string) {
	var se *stepError
	switch {
	case err != nil:
		if errors.As(err, &se) && se.result != "" && plan.Learned.Enforce && mx.Require.Level >= policy.Verify {
			return se.result, se.Error() // the learned Verify refused it
		}
		return "", ""
	case mx.Require.DANE.Usable():
		return "", "" // DANE governs this MX
	}
	if reason := policy.LearnedViolation(plan.Learned.Record, mx); reason != "" {
		// report: enforce would not have tried it
		if plan.Learned.Record.Requirement == learned.DANE && plan.Learned.Record.Admits(mx.Host) {
			return tlsrpt.DANERequired, reason
		}
		return tlsrpt.ValidationFailure, reason
	}
	if c.proved.level < policy.Verify {
		return tlsrpt.Classify(c.verifyErr), "certificate not valid for " + mx.Host + ": " + errText(c.verifyErr)
	}
	return "", ""
}

func errText(err error) string {
	if err == nil {
		return "plaintext"
	}
	return err.Error()
}
