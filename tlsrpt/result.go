// Package tlsrpt implements SMTP TLS Reporting (RFC 8460). This file holds
// the one table that maps TLS, x509 and DNS failures to the RFC 8460 §4.3
// result types; metrics and reports both read it.
package tlsrpt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// ResultType is an RFC 8460 §4.3 result type.
type ResultType string

// The result types of RFC 8460 §4.3.
const (
	// §4.3.1 negotiation failures.
	StartTLSNotSupported    ResultType = "starttls-not-supported"
	CertificateHostMismatch ResultType = "certificate-host-mismatch"
	CertificateExpired      ResultType = "certificate-expired"
	CertificateNotTrusted   ResultType = "certificate-not-trusted"
	ValidationFailure       ResultType = "validation-failure"
	// §4.3.2 policy failures.
	TLSAInvalid         ResultType = "tlsa-invalid"
	DNSSECInvalid       ResultType = "dnssec-invalid"
	DANERequired        ResultType = "dane-required"
	STSPolicyFetchError ResultType = "sts-policy-fetch-error"
	STSPolicyInvalid    ResultType = "sts-policy-invalid"
	STSWebPKIInvalid    ResultType = "sts-webpki-invalid"
)

// ResultTypes lists every result type, §4.3.1 then §4.3.2.
var ResultTypes = []ResultType{
	StartTLSNotSupported, CertificateHostMismatch, CertificateExpired, CertificateNotTrusted, ValidationFailure,
	TLSAInvalid, DNSSECInvalid, DANERequired, STSPolicyFetchError, STSPolicyInvalid, STSWebPKIInvalid,
}

// ErrNoSTARTTLS is the cause to wrap when a server does not offer STARTTLS.
var ErrNoSTARTTLS = errors.New("STARTTLS not offered")

// Classify maps a TLS negotiation or certificate error to its result type.
// Errors it does not know are validation-failure, the RFC's catch-all.
func Classify(err error) ResultType {
	var (
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		unknownErr x509.UnknownAuthorityError
		verifyErr  *tls.CertificateVerificationError
	)
	switch {
	case errors.Is(err, ErrNoSTARTTLS):
		return StartTLSNotSupported
	case errors.As(err, &hostErr):
		return CertificateHostMismatch
	case errors.As(err, &invalidErr) && invalidErr.Reason == x509.Expired:
		return CertificateExpired
	case errors.As(err, &unknownErr), errors.As(err, &invalidErr):
		return CertificateNotTrusted
	case errors.As(err, &verifyErr):
		return Classify(verifyErr.Err)
	}
	return ValidationFailure
}
