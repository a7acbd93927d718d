package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/miekg/dns"
)

// TLSA is one TLSA record (RFC 6698 §2.1), with its certificate
// association data decoded from hex.
type TLSA struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte // certificate association data (RFC 6698 §2.1.4)
}

// Certificate usages (RFC 6698 §2.1.1, acronyms from RFC 7218 §2.1).
// RFC 7672 §3.1 uses only the two DANE usages for SMTP.
const (
	UsagePKIXTA uint8 = 0 // PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3)
	UsagePKIXEE uint8 = 1 // PKIX-EE: unusable for SMTP (RFC 7672 §3.1.3)
	UsageDANETA uint8 = 2 // DANE-TA: trust anchor, name checks (RFC 7672 §3.1.2)
	UsageDANEEE uint8 = 3 // DANE-EE: the server's own key, nothing else (RFC 7672 §3.1.1)
)

// Selectors (RFC 6698 §2.1.2): which part of a certificate is matched.
const (
	SelectorCert uint8 = 0 // the whole DER certificate
	SelectorSPKI uint8 = 1 // its DER SubjectPublicKeyInfo
)

// Matching types (RFC 6698 §2.1.3): how the selected bytes are compared.
const (
	MatchFull   uint8 = 0 // the bytes themselves
	MatchSHA256 uint8 = 1 // their SHA2-256 digest, 32 bytes
	MatchSHA512 uint8 = 2 // their SHA2-512 digest, 64 bytes
)

// ErrMalformed: a TLSA record's association data is not hex, or is a
// digest of the wrong length for its matching type. RFC 7672 §2.2 /
// RFC 6698 §4.1: the record is unusable; the RRset it came in still
// signals that TLS is mandatory. RFC 8460 result type "tlsa-invalid" when
// no usable record remains.
var ErrMalformed = errors.New("malformed tlsa record")

// FromRR converts a TLSA resource record. On error (ErrMalformed) the
// returned TLSA still holds the record's parameters, and its Data when
// the hex decoded, so that it can be shown; it is never Usable.
func FromRR(rr *dns.TLSA) (TLSA, error) {
	if rr == nil {
		return TLSA{}, fmt.Errorf("%w: nil record", ErrMalformed)
	}
	t := TLSA{Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType}
	data, err := hex.DecodeString(rr.Certificate)
	if err != nil {
		return t, fmt.Errorf("%w: %d %d %d: association data: %w", ErrMalformed, t.Usage, t.Selector, t.MatchingType, err)
	}
	t.Data = data
	// RFC 6698 §2.1.3: a digest matching type carries exactly one digest.
	if want := digestLen(t.MatchingType); want > 0 && len(data) != want {
		return t, fmt.Errorf("%w: %d %d %d: %d-byte association data, want %d", ErrMalformed, t.Usage, t.Selector, t.MatchingType, len(data), want)
	}
	return t, nil
}

// digestLen is the data length a matching type requires, 0 when any
// non-empty length goes (Full) or the type is unknown.
func digestLen(matchingType uint8) int {
	switch matchingType {
	case MatchSHA256:
		return sha256.Size
	case MatchSHA512:
		return sha512.Size
	}
	return 0
}

// Usable reports whether an SMTP client can authenticate a server with
// the record (RFC 7672 §3.1, "usable" in the sense of RFC 6698 §4.1):
//   - usage DANE-TA(2) or DANE-EE(3): RFC 7672 §3.1.3 makes PKIX-TA(0) and
//     PKIX-EE(1) unusable for SMTP, and other values are unassigned;
//   - selector Cert(0) or SPKI(1) and matching type Full(0), SHA2-256(1)
//     or SHA2-512(2), the values RFC 6698 §2.1.2 and §2.1.3 define;
//   - data present, and of the digest's length for a digest type.
func (t TLSA) Usable() bool {
	switch {
	case t.Usage != UsageDANETA && t.Usage != UsageDANEEE:
		return false
	case t.Selector != SelectorCert && t.Selector != SelectorSPKI:
		return false
	case t.MatchingType > MatchSHA512:
		return false
	case len(t.Data) == 0:
		return false
	}
	want := digestLen(t.MatchingType)
	return want == 0 || len(t.Data) == want
}

// String returns the record's presentation form (RFC 6698 §2.2): the
// three parameters in decimal and the data in lowercase hex, for example
// "3 1 1 0c72ac70...". Without data it is just the three numbers.
func (t TLSA) String() string {
	s := strconv.Itoa(int(t.Usage)) + " " + strconv.Itoa(int(t.Selector)) + " " + strconv.Itoa(int(t.MatchingType))
	if len(t.Data) == 0 {
		return s
	}
	return s + " " + hex.EncodeToString(t.Data)
}

// short is String with the data cut to 8 bytes, for error messages: a
// "2 0 0" record holds a whole certificate.
func (t TLSA) short() string {
	if len(t.Data) <= 8 {
		return t.String()
	}
	return TLSA{t.Usage, t.Selector, t.MatchingType, t.Data[:8]}.String() + "…"
}

// Match reports whether the record's association data matches cert: the
// certificate (selector 0) or its SubjectPublicKeyInfo (selector 1),
// compared whole or as a SHA2-256 or SHA2-512 digest per the matching
// type (RFC 6698 §2.1.2, §2.1.3). Match ignores the usage, so that a
// diagnostic can show which certificate any record names; it is false
// for selectors and matching types RFC 6698 does not define.
func Match(t TLSA, cert *x509.Certificate) bool {
	if cert == nil {
		return false
	}
	var selected []byte
	switch t.Selector {
	case SelectorCert:
		selected = cert.Raw
	case SelectorSPKI:
		selected = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	if len(selected) == 0 || len(t.Data) == 0 {
		return false
	}
	switch t.MatchingType {
	case MatchFull:
		return bytes.Equal(selected, t.Data)
	case MatchSHA256:
		sum := sha256.Sum256(selected)
		return bytes.Equal(sum[:], t.Data)
	case MatchSHA512:
		sum := sha512.Sum512(selected)
		return bytes.Equal(sum[:], t.Data)
	}
	return false
}
