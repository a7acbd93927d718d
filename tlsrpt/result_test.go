package tlsrpt

import (
	"crypto/x509"
	"errors"
	"fmt"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want ResultType
	}{
		{fmt.Errorf("mx: %w", ErrNoSTARTTLS), StartTLSNotSupported},
		{x509.HostnameError{Host: "mx.example"}, CertificateHostMismatch},
		{x509.CertificateInvalidError{Reason: x509.Expired}, CertificateExpired},
		{x509.UnknownAuthorityError{}, CertificateNotTrusted},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, CertificateNotTrusted},
		{errors.New("tls: handshake failure"), ValidationFailure},
	}
	for _, tc := range tests {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("Classify(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
