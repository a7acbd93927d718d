package relay

import (
	"errors"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/policy"
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
	case errors.Is(err, policy.ErrDNS):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: "DNS lookup failed for " + domain + ": " + err.Error()}
	}
	return internalError(err)
}

// internalError keeps an internal fault temporary: go-smtp would turn a
// plain error into a permanent 554.
func internalError(err error) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error: " + err.Error()}
}
