package inbound

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// The replies Caliop gives of its own. Everything else a client reads is
// go-smtp's or the next hop's. go-smtp turns an error that is not an
// *smtp.SMTPError into a permanent 554, so every error returned to it is
// one of these.
var (
	// RFC 3207 §4: a server may require TLS before MAIL.
	errNeedTLS = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Must issue a STARTTLS command first"}
	// DESIGN.md invariant 5: only the operator's domains.
	errRelayDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "relaying denied"}
	// DESIGN.md invariant 5: no "%", "!" or "@" in a local part (the
	// next hop would route user%other@domain onward; Postfix
	// allow_untrusted_routing = no, which it cannot apply to Caliop).
	errRoutingDenied = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "source routing not accepted: %, ! or @ in the local part"}
	// The next hop is down, timed out, or broke off before MAIL or RCPT
	// was answered: nothing was accepted.
	errNextHop = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Next hop unavailable, try again later"}
	// The next hop broke off while the body went to it: not accepted.
	errNextHopLost = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection to the next hop lost, try again later"}
	// A body line longer than Limits.MaxLine (RFC 5321 §4.5.3.1.6).
	errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 0}, Message: "Line too long, closing connection"}
)

// errBodyLineTooLong refuses a message with a line over Limits.MaxLine:
// the same message fails the same way every time (RFC 3463 5.6.0).
func errBodyLineTooLong(limit int) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: fmt.Sprintf("Message has a line longer than %d octets (RFC 5321 §4.5.3.1.6)", limit)}
}

// errDataTooSlow: the body came slower than Limits.MinDataRate.
func errDataTooSlow(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: host + " data too slow, closing connection"}
}

// errDataIdle: no body byte for Limits.CommandTimeout.
func errDataIdle(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: host + " timeout reading message data, closing connection"}
}

// errDataBroken: the body could not be read to its end.
func errDataBroken(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: host + " error reading message data, closing connection"}
}

func errTooManyErrors(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: host + " too many errors, closing connection"}
}

// positive reports a 2xx reply.
func positive(r *smtp.SMTPError) bool { return r.Code/100 == 2 }
