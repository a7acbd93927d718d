package dane

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Verification errors. Each means DANE did not authenticate the server.
var (
	// ErrInsecure: Verify was given an RRset that is not DNSSEC-secure.
	// DANE does not apply to the host (RFC 7672 §2.2), so there is
	// nothing to verify against; a caller that gets this has a bug.
	ErrInsecure = errors.New("tlsa rrset is not dnssec-secure")
	// ErrNoUsable: every TLSA record is unusable (RFC 7672 §2.2, §3.1):
	// TLS is still required but cannot be authenticated. RFC 7672 §2.2
	// allows delivery over this (encrypted, unauthenticated) connection,
	// never in cleartext; a policy that demands authentication (mandatory
	// DANE, RFC 7672 §6) must not deliver. RFC 8460 result type
	// "tlsa-invalid".
	ErrNoUsable = errors.New("no usable tlsa record")
	// ErrNoMatch: no usable TLSA record matched the presented chain
	// (RFC 7672 §3.2, §9.1): authentication failed; do not deliver over
	// this connection, try another MX or retry later. RFC 8460 result type "validation-failure", unless the
	// error also wraps an x509.HostnameError ("certificate-host-mismatch")
	// or an x509.CertificateInvalidError with Reason x509.Expired
	// ("certificate-expired").
	ErrNoMatch = errors.New("no tlsa record matched the server certificate")
)

// Verify checks the chain a server presented, leaf first in the order
// received (as tls.ConnectionState.PeerCertificates), against the usable
// records of set (RFC 7672 §3). Any one matching record authenticates the
// server (RFC 7672 §9.1: do not deliver unless the chain matches at
// least one usable record), among the records digest algorithm agility
// keeps (see strongest).
//
//   - DANE-EE(3): the leaf's certificate (selector 0) or
//     SubjectPublicKeyInfo (selector 1), whole or hashed per the matching
//     type, equals the data. Names, validity dates, key usage and the
//     rest of the chain are ignored (RFC 7672 §3.1.1, §3.2.1).
//   - DANE-TA(2): a certificate the server sent after its leaf matches the
//     record and is the trust anchor; the leaf must chain to it by
//     signatures through the other presented certificates, every
//     certificate of that path, the trust anchor included, must be valid
//     at now, and the leaf must be named for one of names (RFC 7672
//     §3.1.2, §3.2.2, §3.2.3). See the package documentation for the
//     trust anchors taken from the record itself ("2 0 0", "2 1 0").
//
// names are the reference identifiers for DANE-TA(2) (RFC 7672 §3.2.2):
// the TLSA base domain (set.Name) and, for an MX found by a secure MX
// lookup, the next-hop domain and its CNAME expansion. They are unused by
// DANE-EE(3).
//
// Verify returns nil when the server is authenticated. Otherwise the
// error wraps ErrInsecure, ErrNoUsable or ErrNoMatch. With ErrNoMatch,
// when a DANE-TA(2) record's trust anchor was found, the error also wraps
// the crypto/x509 error of the candidate that came closest: an
// x509.HostnameError when only the name was wrong, an
// x509.CertificateInvalidError (Reason x509.Expired, also for "not yet
// valid") when the signatures held but a date did not, or the chain
// building error.
func Verify(set RRSet, chain []*x509.Certificate, names []string, now time.Time) error {
	if !set.Secure {
		return fmt.Errorf("%w: TLSA %s", ErrInsecure, set.Name)
	}
	usable := set.Usable()
	if len(usable) == 0 {
		return fmt.Errorf("%w: TLSA %s: %d records, none usable", ErrNoUsable, set.Name, len(set.Records))
	}
	if len(chain) == 0 || chain[0] == nil {
		return fmt.Errorf("%w: TLSA %s: the server presented no certificate", ErrNoMatch, set.Name)
	}
	leaf := chain[0]
	usable = strongest(usable)
	for _, t := range usable {
		// RFC 7672 §3.1.1: DANE-EE(3) matches the leaf and nothing else.
		if t.Usage == UsageDANEEE && Match(t, leaf) {
			return nil
		}
	}
	var best *taFailure
	for _, t := range usable {
		if t.Usage != UsageDANETA {
			continue
		}
		for _, ta := range anchors(t, chain) {
			f := verifyTA(leaf, ta, chain, names, now)
			if f == nil {
				return nil
			}
			f.record = t
			if best == nil || f.stage > best.stage {
				best = f
			}
		}
	}
	if best != nil {
		return fmt.Errorf("%w: TLSA %s: %s: trust anchor %q: %w",
			ErrNoMatch, set.Name, best.record.short(), best.anchor, best.err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return fmt.Errorf("%w: TLSA %s: none of %d usable records matches the chain (leaf %q, \"3 1 1 %x\")",
		ErrNoMatch, set.Name, len(usable), leaf.Subject.String(), spki)
}

// strongest keeps, for each usage and selector, the Full(0) records and
// the records of the strongest digest present, dropping weaker digests
// (RFC 7671 §9 digest algorithm agility, required by RFC 7672 §5): a
// domain that publishes SHA2-512 next to SHA2-256 is not exposed to an
// attack on SHA2-256 alone. Matching type numbers order the strength.
func strongest(usable []TLSA) []TLSA {
	type key struct{ usage, selector uint8 }
	best := map[key]uint8{}
	for _, t := range usable {
		k := key{t.Usage, t.Selector}
		best[k] = max(best[k], t.MatchingType)
	}
	var out []TLSA
	for _, t := range usable {
		if t.MatchingType == MatchFull || t.MatchingType == best[key{t.Usage, t.Selector}] {
			out = append(out, t)
		}
	}
	return out
}
