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
}

// String renders the requirement for logs and replies, e.g. "verify,tls>=1.2".
func (r Requirement) String() string {
	if r.Level == None {
		return "none"
	}
	return r.Level.String() + ",tls>=" + tlsVersionName(r.MinTLS)
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
