// Package wkd implements key discovery in the OpenPGP Web Key Directory
// (WKD, draft-koch-openpgp-webkey-service-21 §3.1): it finds the public
// key of a mail address over HTTPS at a well-known URL of the address's
// own domain, and picks from the answer the one key that Caliop may
// encrypt to (opportunistic PGP/MIME).
//
// The directory is trusted as far as its HTTPS certificate goes: the key
// comes from the recipient's domain, not from a keyserver where anybody
// can publish a key with anybody's address. A key is taken only if one
// of its valid self-signed user IDs is the recipient's address, it is
// neither expired nor revoked, and its algorithms are strong enough
// (Select). Everything else is "no usable key", and the message is not
// encrypted to it.
//
// The package is a leaf: no caching, no knowledge of the relay. DNS and
// dialing come in through Client fields, so that every name goes to
// Caliop's configured DNS servers.
package wkd

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Lookup outcome classes. Every error of Client.Lookup and Select wraps
// exactly one of them.
var (
	// ErrNoKey: the directory answered that it has no key for the address
	// (HTTP 404), or every key it sent is unusable (Lookup.Rejected says
	// why), or the address cannot have a directory at all. Cacheable as
	// "no key": send unencrypted under the opportunistic policy.
	ErrNoKey = errors.New("wkd: no usable key")
	// ErrUnknown: the lookup did not reach an answer (DNS failure, network
	// error, timeout, HTTP status other than 200 and 404, a body over
	// MaxResponseSize, a redirect that is not to https, a body that does
	// not parse). It is NOT "no key": retry later, and do not cache it as
	// an absence of key.
	ErrUnknown = errors.New("wkd: lookup failed")
	// ErrNoDirectory: neither openpgpkey.<domain> nor <domain> has an
	// address (draft §3.1), so no address of the domain has a key. It
	// comes wrapped with ErrNoKey, and holds for the whole domain.
	ErrNoDirectory = errors.New("no directory")
)

// zbase32Alphabet is the alphabet of z-base-32, the encoding draft §3.1
// prescribes for the hashed local part.
const zbase32Alphabet = "ybndrfg8ejkmcpqxot1uwisza345h769"

// Hash returns the directory name of localPart (draft §3.1): the SHA-1
// digest of the local part with ASCII A-Z mapped to lowercase and every
// other byte (including non-ASCII letters) left as is, encoded in
// z-base-32 (32 characters for the 160-bit digest).
func Hash(localPart string) string {
	sum := sha1.Sum([]byte(asciiLower(localPart)))
	return zbase32(sum[:])
}

// AdvancedURL returns the draft §3.1 advanced-method URL of
// localPart@domain:
//
//	https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>?l=<local-part>
//
// domain is taken in lowercase A-labels (a trailing dot dropped; a name
// IDNA rejects is only lowercased). The query carries the local part
// unchanged and percent-escaped: a subaddress is not stripped, so
// "joe+tag" gives l=joe%2Btag and the hash of "joe+tag".
func AdvancedURL(localPart, domain string) string {
	d := normalDomain(domain)
	return "https://openpgpkey." + d + "/.well-known/openpgpkey/" + d + "/hu/" + Hash(localPart) + "?l=" + queryEscape(localPart)
}

// DirectURL returns the draft §3.1 direct-method URL of localPart@domain,
// used only when openpgpkey.<domain> does not exist:
//
//	https://<domain>/.well-known/openpgpkey/hu/<hash>?l=<local-part>
//
// domain and localPart are treated as by AdvancedURL.
func DirectURL(localPart, domain string) string {
	return "https://" + normalDomain(domain) + "/.well-known/openpgpkey/hu/" + Hash(localPart) + "?l=" + queryEscape(localPart)
}

// splitAddress splits "local@domain" at the last "@" and returns the
// local part as given and the domain in lowercase A-labels.
func splitAddress(address string) (local, domain string, err error) {
	i := strings.LastIndexByte(address, '@')
	if i <= 0 || i == len(address)-1 {
		return "", "", fmt.Errorf("address %q is not local@domain", address)
	}
	domain, err = toASCII(address[i+1:])
	if err != nil {
		return "", "", err
	}
	return address[:i], domain, nil
}

// normalDomain is toASCII for URL building, where an invalid name is
// only lowercased (Lookup refuses invalid names before building a URL).
func normalDomain(domain string) string {
	if d, err := toASCII(domain); err == nil {
		return d
	}
	return asciiLower(strings.TrimSuffix(domain, "."))
}

// toASCII returns domain (trailing dot dropped) in lowercase A-labels.
// ASCII names are only lowercased and checked for forbidden characters; a
// name with U-labels or "xn--" labels goes through IDNA2008 with the UTS
// #46 lookup mapping (golang.org/x/net/idna.Lookup), as in RFC 6531.
func toASCII(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if d == "" || !utf8.ValidString(d) {
		return "", fmt.Errorf("domain %q is not a domain name", domain)
	}
	lower := asciiLower(d)
	if isASCII(lower) && !strings.Contains(lower, "xn--") {
		for _, c := range []byte(lower) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return "", fmt.Errorf("domain %q: character %q not allowed", domain, c)
			}
		}
		if strings.Contains(lower, "..") || strings.HasPrefix(lower, ".") {
			return "", fmt.Errorf("domain %q has an empty label", domain)
		}
		return lower, nil
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", domain, err)
	}
	return asciiLower(a), nil
}

// asciiLower maps ASCII A-Z to a-z and leaves every other byte alone
// (draft §3.1 maps only the ASCII uppercase letters of the local part).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiEqualFold compares a and b with ASCII letters folded only.
func asciiEqualFold(a, b string) bool {
	return asciiLower(a) == asciiLower(b)
}

// queryEscape escapes s for the l= parameter: url.QueryEscape, with a
// space as %20 rather than "+" (a "+" in s is already %2B).
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// zbase32 encodes b in z-base-32, five bits a character from the most
// significant bit, the last group padded with zero bits.
func zbase32(b []byte) string {
	var sb strings.Builder
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(zbase32Alphabet[acc>>uint(bits)&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(zbase32Alphabet[acc<<uint(5-bits)&31])
	}
	return sb.String()
}
