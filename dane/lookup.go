package dane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/caliop/relay/resolver"
)

// Resolver is the DNS lookup dane needs. *resolver.Resolver implements
// it: errors wrap resolver.ErrNXDomain (with the Result still filled in,
// so that Authentic tells an authenticated denial), resolver.ErrServFail
// or resolver.ErrTimeout; NODATA is no records and a nil error.
type Resolver interface {
	LookupTLSA(ctx context.Context, name string) ([]*dns.TLSA, resolver.Result, error)
}

var _ Resolver = (*resolver.Resolver)(nil)

// Lookup errors.
var (
	// ErrLookup: the TLSA lookup failed (SERVFAIL, DNSSEC-bogus answer,
	// timeout). RFC 7672 §2.1.1 and §2.2: the MX host is unusable; try
	// another MX or retry later, and never fall back to a weaker policy
	// for it, since a forged failure is how an attacker would hide the
	// records. RFC 8460 result type "dnssec-invalid".
	ErrLookup = errors.New("tlsa lookup failed")
)

// RRSet is the outcome of a TLSA lookup for one MX host.
type RRSet struct {
	// Name is the TLSA base domain the RRset belongs to (RFC 7671 §7,
	// RFC 7672 §2.2.3): the host name, or the end of its CNAME chain,
	// without "_25._tcp." and without a trailing dot, in lowercase. A
	// CNAME at _25._tcp.<Name> itself does not change it. It is the first
	// reference identifier for DANE-TA(2) name checks (RFC 7672 §3.2.2)
	// and the name to send in SNI (RFC 7672 §8.1).
	Name string
	// Records holds every record of the RRset, usable or not. A record
	// FromRR rejects is kept with its parameters (and Data when the hex
	// decoded) and is not Usable. Records is empty unless Secure.
	Records []TLSA
	// Secure: the answer, or the denial of existence, was
	// DNSSEC-authenticated. When false DANE does not apply to the host
	// (RFC 7672 §2.2), and the records of the insecure answer are
	// dropped so that no caller can act on them.
	Secure bool
}

// Usable returns the records of s that can authenticate a server (see
// TLSA.Usable). A secure RRset with records but none usable still makes
// TLS mandatory, unauthenticated (RFC 7672 §2.2).
func (s RRSet) Usable() []TLSA {
	var out []TLSA
	for _, t := range s.Records {
		if t.Usable() {
			out = append(out, t)
		}
	}
	return out
}

// Lookup finds the TLSA RRset for SMTP on port 25 of an MX host
// (RFC 7672 §2.2.2, §2.2.3). host is the MX host name; canonical is the
// end of the CNAME chain its address lookup followed, "" if none. The
// caller passes canonical only when that address lookup, and so the
// chain, was DNSSEC-secure (RFC 7672 §2.2.2, "Secure CNAME").
//
// With a canonical name, the TLSA RRset is looked up at
// _25._tcp.<canonical> first and, when that yields no secure records
// (an NXDOMAIN or NODATA answer, or an insecure one), at _25._tcp.<host>
// (RFC 7672 §2.2.3: "If any 'insecure' records are encountered, or the
// TLSA records don't exist, the next candidate TLSA base domain is
// tried"). Without one, only _25._tcp.<host> is asked.
//
// The outcomes:
//   - secure records: RRSet{Secure: true, Records: ...}, nil;
//   - secure denial (NXDOMAIN or NODATA): RRSet{Secure: true}, nil;
//   - insecure answer or denial: RRSet{Secure: false}, nil; DANE does not
//     apply;
//   - SERVFAIL, bogus, timeout or any other failure, at either name:
//     RRSet{}, an error wrapping ErrLookup that names the query. A failure
//     at the canonical name is not retried at the host name (RFC 7672
//     §2.1.1: an error makes the lookup fail).
func Lookup(ctx context.Context, r Resolver, host, canonical string) (RRSet, error) {
	host, canonical = baseDomain(host), baseDomain(canonical)
	if host == "" {
		return RRSet{}, fmt.Errorf("%w: empty MX host name", ErrLookup)
	}
	if canonical != "" && canonical != host {
		set, err := lookupAt(ctx, r, canonical)
		if err != nil {
			return RRSet{}, err
		}
		if set.Secure && len(set.Records) > 0 {
			return set, nil
		}
	}
	return lookupAt(ctx, r, host)
}

// lookupAt asks for the TLSA RRset of one candidate TLSA base domain.
func lookupAt(ctx context.Context, r Resolver, base string) (RRSet, error) {
	qname := "_25._tcp." + base
	rrs, res, err := r.LookupTLSA(ctx, qname)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		// RFC 7672 §2.2: an authenticated denial means no TLSA records;
		// an unauthenticated one means DANE does not apply.
		return RRSet{Name: base, Secure: res.Authentic}, nil
	case err != nil:
		return RRSet{}, fmt.Errorf("%w: TLSA %s: %w", ErrLookup, qname, err)
	case !res.Authentic:
		// RFC 7672 §2.2: insecure records are not used.
		return RRSet{Name: base}, nil
	}
	set := RRSet{Name: base, Secure: true}
	for _, rr := range rrs {
		if rr == nil {
			continue
		}
		t, _ := FromRR(rr) // kept even when malformed: it is not Usable
		set.Records = append(set.Records, t)
	}
	return set, nil
}

// baseDomain returns a host name in the form RRSet.Name uses: lowercase,
// no trailing dot.
func baseDomain(name string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
}
