package dane

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// How far a DANE-TA(2) candidate got; the furthest one explains the
// failure.
const (
	stageChain = iota + 1 // no path by signatures from the leaf to the anchor
	stageDate             // a path, but a certificate on it is not valid now
	stageName             // a valid path, but the leaf is named otherwise
)

// taFailure is why one trust anchor did not authenticate the server.
type taFailure struct {
	stage  int
	err    error  // from crypto/x509, possibly wrapped
	anchor string // which trust anchor, for the message
	record TLSA
}

// anchor is a trust anchor for one DANE-TA(2) record: the certificate
// given to x509.Verify as its only root.
type anchor struct {
	cert *x509.Certificate
	desc string
	// viaKey: the record holds a public key ("2 1 0") and cert is a
	// certificate that key signed, whose own dates count; otherwise
	// cert is the trust anchor itself and has no validity period
	// (RFC 5280 §6.1.1(d)).
	viaKey bool
}

// anchors returns the trust anchors record t designates for chain.
//
// RFC 7672 §3.1.2: the server sends its trust anchor after its leaf, so
// the candidates are the certificates the server sent other than the leaf
// (the leaf itself is never its own trust anchor; that is DANE-EE(3)).
// Only when none matches, a record carrying the trust anchor in full is
// used on its own: "2 0 0" holds the certificate (RFC 7671 §5.2.2), and
// "2 1 0" the public key, which stands in for any presented certificate
// it signed (RFC 7671 §5.2.3).
func anchors(t TLSA, chain []*x509.Certificate) []anchor {
	leaf := chain[0]
	var out []anchor
	for _, c := range chain[1:] {
		if c != nil && !bytes.Equal(c.Raw, leaf.Raw) && Match(t, c) {
			out = append(out, anchor{c, "sent " + c.Subject.String(), false})
		}
	}
	if len(out) > 0 || t.MatchingType != MatchFull {
		return out
	}
	switch t.Selector {
	case SelectorCert:
		if c, err := x509.ParseCertificate(t.Data); err == nil && !bytes.Equal(c.Raw, leaf.Raw) {
			out = append(out, anchor{c, "from DNS " + c.Subject.String(), false})
		}
	case SelectorSPKI:
		pub, err := x509.ParsePKIXPublicKey(t.Data)
		if err != nil {
			break
		}
		for _, c := range chain {
			// A certificate holding the key itself would be the trust
			// anchor, matched above unless it is the leaf.
			if c != nil && !bytes.Equal(c.RawSubjectPublicKeyInfo, t.Data) && signedByKey(c, pub) {
				out = append(out, anchor{c, "public key from DNS, via " + c.Subject.String(), true})
			}
		}
	}
	return out
}

// signedByKey reports whether c carries a signature by pub, with an
// algorithm crypto/x509 accepts for chains (no MD5 or SHA-1).
func signedByKey(c *x509.Certificate, pub any) bool {
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1:
		return false
	}
	issuer := &x509.Certificate{PublicKey: pub}
	return issuer.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// verifyTA checks the leaf against one trust anchor (RFC 7672 §3.1.2,
// §3.2.2): a path by signatures through the presented certificates,
// every certificate below the trust anchor valid at now and fit for a
// server (serverAuth, anyExtendedKeyUsage or no EKU), the leaf named for
// one of names. It returns nil on success.
func verifyTA(leaf *x509.Certificate, ta anchor, chain []*x509.Certificate, names []string, now time.Time) *taFailure {
	root := ta.cert
	if !ta.viaKey {
		// RFC 5280 §6.1.1(d): a trust anchor is a name and a key, with
		// no validity period; OpenSSL's DANE-TA (Postfix) agrees.
		undated := *ta.cert
		undated.NotBefore, undated.NotAfter = time.Time{}, time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
		root = &undated
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != nil && !bytes.Equal(c.Raw, ta.cert.Raw) {
			intermediates.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		// A server certificate: as OpenSSL checks for TLS servers
		// (and so Postfix). No EKU and anyExtendedKeyUsage pass.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, err := leaf.Verify(opts); err != nil {
		stage, err := diagnose(leaf, opts, chain, root, now, err)
		return &taFailure{stage: stage, err: err, anchor: ta.desc}
	}
	if err := matchNames(leaf, names); err != nil {
		return &taFailure{stage: stageName, err: err, anchor: ta.desc}
	}
	return nil
}

// maxDiagnose bounds the extra verifications diagnose runs, whatever the
// length of the chain a server sends.
const maxDiagnose = 8

// diagnose tells a date failure from a broken path after verification at
// now failed with nowErr. crypto/x509 reports an expired leaf before
// looking for a path at all, so the path is looked for again at each
// instant when one of the certificates becomes valid (the latest start
// of validity on a path is among them). If one verifies, the certificate
// on it that is not valid at now is reported as an
// x509.CertificateInvalidError. If none does, the path is broken: the
// error of the first try (at the leaf's start of validity) says why,
// unless that too is about dates (validity periods that never overlap),
// when nowErr is the best account.
func diagnose(leaf *x509.Certificate, opts x509.VerifyOptions, chain []*x509.Certificate, root *x509.Certificate, now time.Time, nowErr error) (int, error) {
	var pathErr error
	tried := map[time.Time]bool{}
	for _, c := range append(chain[:len(chain):len(chain)], root) {
		if c == nil || tried[c.NotBefore] || len(tried) == maxDiagnose {
			continue
		}
		tried[c.NotBefore] = true
		opts.CurrentTime = c.NotBefore
		paths, err := leaf.Verify(opts)
		if err != nil {
			if pathErr == nil {
				pathErr = err
			}
			continue
		}
		for _, p := range paths[0] {
			if now.Before(p.NotBefore) || now.After(p.NotAfter) {
				return stageDate, invalidAt(p, now)
			}
		}
	}
	if pathErr != nil && !isDateError(pathErr) {
		return stageChain, pathErr
	}
	var invalid x509.CertificateInvalidError
	if errors.As(nowErr, &invalid) && invalid.Reason == x509.Expired && invalid.Cert != nil {
		return stageDate, fmt.Errorf("certificate %q: %w", invalid.Cert.Subject.String(), nowErr)
	}
	return stageChain, nowErr
}

// isDateError reports whether err is crypto/x509's error for a
// certificate outside its validity period.
func isDateError(err error) bool {
	var invalid x509.CertificateInvalidError
	return errors.As(err, &invalid) && invalid.Reason == x509.Expired
}

// invalidAt is the error crypto/x509 gives for a certificate outside its
// validity period, naming the certificate.
func invalidAt(c *x509.Certificate, now time.Time) error {
	detail := fmt.Sprintf("current time %s is after %s", now.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	if now.Before(c.NotBefore) {
		detail = fmt.Sprintf("current time %s is before %s", now.UTC().Format(time.RFC3339), c.NotBefore.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("certificate %q: %w", c.Subject.String(), x509.CertificateInvalidError{Cert: c, Reason: x509.Expired, Detail: detail})
}

// matchNames checks the leaf against the reference identifiers (RFC 7672
// §3.2.3): its DNS-IDs when it has any, else its CN-ID; a wildcard only
// as the whole left-most label, matching one label. It returns an
// x509.HostnameError, wrapped, when none matches.
func matchNames(leaf *x509.Certificate, names []string) error {
	for _, n := range names {
		// crypto/x509 matches DNS-IDs only, with RFC 6125 wildcards.
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	if len(leaf.DNSNames) == 0 && leaf.Subject.CommonName != "" {
		// RFC 7672 §3.2.3: "The CN-ID is only considered when no DNS-IDs
		// are present."
		for _, n := range names {
			if matchHostname(leaf.Subject.CommonName, n) {
				return nil
			}
		}
	}
	host := ""
	if len(names) > 0 {
		host = names[0]
	}
	return fmt.Errorf("leaf named for none of %q: %w", names, x509.HostnameError{Certificate: leaf, Host: host})
}

// matchHostname reports whether a presented identifier matches a
// reference identifier, case-insensitively and ignoring trailing dots
// (RFC 7672 §3.2.3: "*" only as the entire first label, matching exactly
// one label).
func matchHostname(pattern, host string) bool {
	pattern, host = baseDomain(pattern), baseDomain(host)
	if pattern == "" || host == "" {
		return false
	}
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*.")
	if !ok || suffix == "" {
		return false
	}
	label, rest, ok := strings.Cut(host, ".")
	return ok && label != "" && rest == suffix
}
