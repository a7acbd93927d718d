// Package policy decides, for one destination domain, which MX hosts may
// receive its mail and what each connection must prove before MAIL FROM is
// sent. The decision is one function, Engine.Plan, that depends only on
// injected DNS and configuration.
//
// Precedence (DESIGN.md): a local override wins; otherwise the default
// level applies. DANE (RFC 7672) and MTA-STS (RFC 8461) slot in between as
// further Sources. Plaintext is never a level the engine chooses by itself.
package policy

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/caliop/relay/dane"
)

// Level is what a connection to an MX must prove, weakest first. Levels
// are ordered: a connection that proved Verify also satisfies Encrypt.
type Level int

// The levels.
const (
	// None allows plaintext. Only an explicit local override yields it,
	// and every such delivery is logged and counted.
	None Level = iota
	// Encrypt requires TLS; any certificate is accepted.
	Encrypt
	// Verify requires TLS with a certificate that is valid in the WebPKI
	// (system roots) for the MX host name (RFC 6125).
	Verify
)

// ParseLevel parses a level as written in configuration.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "none":
		return None, nil
	case "encrypt":
		return Encrypt, nil
	case "verify":
		return Verify, nil
	}
	return 0, fmt.Errorf("policy: unknown level %q", s)
}

// String returns the configuration name of l.
func (l Level) String() string {
	switch l {
	case None:
		return "none"
	case Encrypt:
		return "encrypt"
	case Verify:
		return "verify"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Requirement is what one connection must prove.
type Requirement struct {
	Level Level
	// MinTLS is the lowest TLS version accepted (tls.VersionTLS12 at least
	// unless Level is None).
	MinTLS uint16
	// DANE, when set, holds the MX host's DNSSEC-secure TLSA records
	// (RFC 7672 §2.2): with usable records the certificate must match one
	// of them and Level's WebPKI check does not apply (DANE wins); with
	// none usable, TLS is required but cannot be authenticated.
	DANE *DANE
}

// DANE is what TLSA records require of one MX host.
type DANE struct {
	Set dane.RRSet
	// Names are the reference identifiers a DANE-TA certificate must
	// carry (RFC 7672 §3.2.2): the TLSA base domain, the MX host name
	// and, when the MX records were secure, the destination domain.
	Names []string
}

// Usable reports whether the records can authenticate the server.
func (d *DANE) Usable() bool { return d != nil && len(d.Set.Usable()) > 0 }

// Authenticated reports whether a connection meeting r is authenticated
// (RFC 8689 §4.2.1): by usable TLSA records or a WebPKI check.
func (r Requirement) Authenticated() bool {
	return r.DANE.Usable() || r.DANE == nil && r.Level >= Verify
}

// String renders the requirement for logs and replies, e.g.
// "verify,tls>=1.2" or "dane,tls>=1.2".
func (r Requirement) String() string {
	switch {
	case r.Level == None && r.DANE == nil:
		return "none"
	case r.DANE.Usable():
		return "dane,tls>=" + tlsVersionName(r.MinTLS)
	case r.DANE != nil:
		return "encrypt(tlsa unusable),tls>=" + tlsVersionName(r.MinTLS)
	}
	return r.Level.String() + ",tls>=" + tlsVersionName(r.MinTLS)
}

// Key identifies r by value, for reusing connections that proved it. The
// reference identifiers count only where a usable DANE-TA record would
// check them (RFC 7672 §3.1.1: DANE-EE ignores names), so the domains of
// one MX host under DANE-EE share its connections.
func (r Requirement) Key() string {
	k := r.String()
	if r.DANE != nil {
		for _, t := range r.DANE.Set.Records {
			k += "|" + t.String()
		}
		if r.DANE.checksNames() {
			k += "|" + strings.Join(r.DANE.Names, ",")
		}
	}
	return k
}

// checksNames reports whether verification reads Names: a usable
// DANE-TA(2) record is among the records.
func (d *DANE) checksNames() bool {
	for _, t := range d.Set.Usable() {
		if t.Usage == dane.UsageDANETA {
			return true
		}
	}
	return false
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return tls.VersionName(v)
}
