package mtasts

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// DNS name length limits (RFC 1035 §2.3.4, in presentation form without
// the trailing dot).
const (
	maxLabelLen = 63
	maxNameLen  = 253
)

// mxPattern validates an RFC 8461 §3.2 policy mx value,
//
//	sts-policy-mx-value = ["*."] Domain
//
// where Domain is an RFC 5321 §4.1.2 domain or its U-label form (RFC
// 6531), and returns it in lowercase A-labels. A trailing dot is dropped:
// the grammar has none, but the name is unambiguous, and refusing the
// whole policy for it would deliver as if the domain had no policy.
func mxPattern(v string) (string, error) {
	v = strings.TrimSuffix(v, ".")
	prefix, domain := "", v
	if rest, ok := strings.CutPrefix(v, "*."); ok {
		prefix, domain = "*.", rest
	}
	a, err := toASCII(domain)
	if err != nil {
		return "", err
	}
	return prefix + a, nil
}

// toASCII validates a domain name without trailing dot and returns it in
// lowercase A-labels. ASCII labels must be letters, digits and inner
// hyphens (RFC 5321 §4.1.2 sub-domain); a name with a U-label or an
// A-label ("xn--") goes through IDNA2008 with the UTS #46 lookup mapping
// (golang.org/x/net/idna.Lookup), which rejects invalid ones. Every label
// is 1 to 63 octets and the name at most 253 once in A-labels.
func toASCII(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty domain name")
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("domain name %q is not valid UTF-8", name)
	}
	labels := strings.Split(name, ".")
	idn := false
	for _, l := range labels {
		switch {
		case l == "":
			return "", fmt.Errorf("domain name %q has an empty label", name)
		case !isASCII(l):
			idn = true
		case !isLDH(l):
			return "", fmt.Errorf("label %q of %q is not letters, digits and inner hyphens", l, name)
		case len(l) >= 4 && strings.EqualFold(l[:4], "xn--"):
			idn = true
		}
	}
	ascii := strings.ToLower(name)
	if idn {
		a, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return "", fmt.Errorf("domain name %q is not a valid internationalized name: %w", name, err)
		}
		ascii = strings.ToLower(a)
		// The lookup mapping turns some characters (U+3002 "。") into
		// dots; a U-label holds none of them.
		if strings.Count(ascii, ".") != len(labels)-1 {
			return "", fmt.Errorf("domain name %q has a label separator inside a U-label", name)
		}
	}
	for _, l := range strings.Split(ascii, ".") {
		if len(l) > maxLabelLen {
			return "", fmt.Errorf("label %q of %q is %d octets, at most %d", l, name, len(l), maxLabelLen)
		}
	}
	if len(ascii) > maxNameLen {
		return "", fmt.Errorf("domain name %q is %d octets, at most %d", name, len(ascii), maxNameLen)
	}
	return ascii, nil
}

// isLDH reports whether l is an RFC 5321 sub-domain in ASCII:
// Let-dig [Ldh-str].
func isLDH(l string) bool {
	if !isAlnum(l[0]) || !isAlnum(l[len(l)-1]) {
		return false
	}
	for i := 1; i < len(l)-1; i++ {
		if !isAlnum(l[i]) && l[i] != '-' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
