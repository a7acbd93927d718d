package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/tlsrpt"
)

// planReply maps a policy.Plan error to the reply for the MTA.
func planReply(domain string, err error) *smtp.SMTPError {
	switch {
	case errors.Is(err, policy.ErrNullMX):
		// RFC 7505 §4.2.
		return &smtp.SMTPError{Code: 556, EnhancedCode: smtp.EnhancedCode{5, 1, 10}, Message: domain + " does not accept mail (null MX)"}
	case errors.Is(err, policy.ErrNoDomain):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: domain + " does not exist (NXDOMAIN)"}
	case errors.Is(err, policy.ErrNoMailHost):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: domain + " has no MX and no address"}
	case errors.Is(err, policy.ErrSTSNoMX), errors.Is(err, policy.ErrSTSRequired),
		errors.Is(err, policy.ErrDANELookup), errors.Is(err, policy.ErrDANERequired), errors.Is(err, policy.ErrLearned):
		// DESIGN.md invariant 3: a policy failure is temporary.
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 5}, Message: err.Error()}
	case errors.Is(err, policy.ErrSTSUnavailable):
		// Cluster mode with the store down: wait, never downgrade.
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: err.Error()}
	case errors.Is(err, policy.ErrDNS):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "DNS lookup failed for " + domain + ": " + err.Error()}
	}
	return smtpfront.LocalError(err)
}

// planFailure is the failure class of a policy.Plan error for
// caliop_delivery_failures_total: the RFC 8460 result type of a DANE
// failure, else dns or policy.
func planFailure(err error) string {
	switch {
	case errors.Is(err, policy.ErrDANELookup):
		return string(tlsrpt.DNSSECInvalid)
	case errors.Is(err, policy.ErrDANERequired):
		return string(tlsrpt.DANERequired)
	case errors.Is(err, policy.ErrSTSNoMX), errors.Is(err, policy.ErrSTSRequired), errors.Is(err, policy.ErrSTSUnavailable), errors.Is(err, policy.ErrLearned):
		return metrics.FailurePolicy
	case errors.Is(err, policy.ErrDNS), errors.Is(err, policy.ErrNullMX),
		errors.Is(err, policy.ErrNoDomain), errors.Is(err, policy.ErrNoMailHost):
		return metrics.FailureDNS
	}
	return metrics.FailureOther
}

// errLineTooLong refuses a message with a line over the limit: RFC 5321
// §4.5.3.1.6 allows 1000 octets, and the same message fails the same way
// every time, so the refusal is permanent (RFC 3463 5.6.0: other media
// error).
func errLineTooLong(limit int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: fmt.Sprintf("Message has a line longer than %d octets (RFC 5321 §4.5.3.1.6)", limit)}
}

// errAuthRateLimited: the client's address had too many AUTH failures
// lately (RFC 4954 §6: 454 4.7.0 temporary authentication failure).
var errAuthRateLimited = &smtp.SMTPError{Code: 454, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many authentication failures from your address, try again later"}

// errTooManyAuthFailures ends a connection that failed AUTH too often.
func errTooManyAuthFailures(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: host + " too many authentication failures, closing connection"}
}

// noteRefused counts n recipients of domain refused before any delivery.
func (s *Server) noteRefused(domain, class string, n int) {
	s.opts.Metrics.Failed(metrics.Destination{Domain: domain}, class, n)
}

// planFor is the plan for domain, its decision's outcomes recorded.
func (s *Server) planFor(ctx context.Context, domain string) (policy.Plan, error) {
	p, err := s.opts.Planner.Plan(ctx, domain)
	s.notePlan(p)
	return p, err
}

// notePlan records what a decision found, for TLS-RPT and metrics.
func (s *Server) notePlan(p policy.Plan) {
	for _, o := range p.Outcomes {
		if s.opts.Report != nil {
			s.opts.Report.Record(o)
		}
		switch o.Result {
		case tlsrpt.DNSSECInvalid:
			s.opts.Metrics.DANE(metrics.DANELookupError)
		case tlsrpt.TLSAInvalid:
			s.opts.Metrics.DANE(metrics.DANEUnusable)
		}
	}
}

// replan is called after every MX of plan failed: the planner's rule
// (policy.Engine.Replan) says whether to try once more, under which plan.
func (sess *session) replan(ctx context.Context, plan policy.Plan) (policy.Plan, bool) {
	rp, ok := sess.s.opts.Planner.(Replanner)
	if !ok {
		return plan, false
	}
	p, ok := rp.Replan(ctx, plan)
	if !ok {
		return plan, false
	}
	sess.s.notePlan(p)
	sess.log.Info("mta-sts policy changed after a failed delivery, trying again", zap.String("domain", plan.Domain))
	return p, true
}
