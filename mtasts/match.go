// Package mtasts implements MTA-STS (SMTP MTA Strict Transport Security,
// RFC 8461). A domain publishes, over HTTPS, which MX hosts may receive its
// mail and that they must present a WebPKI-valid certificate; a sender that
// honours it cannot be downgraded to plaintext or redirected by an attacker
// on the DNS or network path. This file holds the MX name matching rule;
// discovery, fetch and parse arrive with policy enforcement.
package mtasts

import "strings"

// MatchMX reports whether the MX host name matches a policy "mx" pattern
// (RFC 8461 §4.1): comparison is case-insensitive on A-labels, and a
// pattern "*.example.com" matches exactly one left-most label.
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(host, ".")
		return found && label != "" && parent == rest
	}
	return pattern == host
}
