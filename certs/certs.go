// Package certs is where Caliop's inbound certificates come from: the one
// presented after STARTTLS on port 25 (RFC 3207) and by the HTTPS listener
// that hosts the MTA-STS policy (RFC 8461 §3.3).
//
// Two sources exist. Files reads a PEM chain and key that the operator (or
// an external ACME client) maintains, and picks up a rewritten pair
// without a restart. ACME obtains and renews certificates itself with
// golang.org/x/crypto/acme/autocert (RFC 8555), answering the CA's
// TLS-ALPN-01 challenge (RFC 8737) on the HTTPS listener or its HTTP-01
// challenge on a plain HTTP listener, and keeps them in a cache directory.
// Keys are ECDSA P-256.
//
// TLSA311 gives the DANE record (RFC 7671, "3 1 1") for the current key.
package certs

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// Source gives the certificate for a TLS handshake (STARTTLS on port 25 and
// the HTTPS policy host).
type Source interface {
	GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

var (
	_ Source = (*Files)(nil)
	_ Source = (*ACME)(nil)
)

// STARTTLSConfig is the server configuration for STARTTLS on port 25:
// certificates from src, and no protocol below TLS 1.2 (RFC 8996 deprecates
// TLS 1.0 and 1.1).
func STARTTLSConfig(src Source) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: src.GetCertificate,
	}
}

// TLSA311 returns the RDATA of a DANE-EE TLSA record for pub, "3 1 1 <hex>":
// usage DANE-EE (3), selector SubjectPublicKeyInfo (1), matching type
// SHA-256 (1) (RFC 6698 §2.1, RFC 7671 §5.1), the form RFC 7672 §3.1.1
// recommends for SMTP. It stays valid across certificate renewals as long
// as the key does not change.
//
// With ACME, the key changes whenever autocert has no valid certificate in
// its cache: at the first issuance, when the cache directory is lost, or
// when the certificate expired before it could be renewed. A renewal of a
// valid cached certificate reuses its key (autocert renews with the key of
// the certificate it replaces), so the record survives ordinary renewals,
// but nothing guarantees that: the operator should publish the record of
// the next key too, or watch for a change (compare TLSA311 of
// ACME.CachedKey after each renewal) before removing the old one.
func TLSA311(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("tlsa 3 1 1: %w", err)
	}
	sum := sha256.Sum256(der)
	return "3 1 1 " + hex.EncodeToString(sum[:]), nil
}
