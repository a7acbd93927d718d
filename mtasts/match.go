// Package mtasts implements MTA-STS (SMTP MTA Strict Transport Security,
// RFC 8461). A domain publishes, over HTTPS, which MX hosts may receive its
// mail and that they must present a WebPKI-valid certificate; a sender that
// honours it cannot be downgraded to plaintext or redirected by an attacker
// on the DNS or network path.
//
// The package is a leaf: it knows the standard, not the relay. It parses
// the TXT record at _mta-sts.<domain> (SelectRecord, ParseRecord; RFC 8461
// §3.1), fetches the policy over HTTPS through a dialer the caller provides
// (Fetcher; §3.3), parses it (ParsePolicy; §3.2) and matches MX host names
// against it (Policy.Admits, MatchMX; §4.1). Resolving TXT records and
// host names, caching policies and deciding delivery belong to the caller.
//
// Errors are grouped by phase: ErrNoRecord, ErrMultipleRecords and
// ErrRecordSyntax for discovery; ErrFetch, ErrWebPKI and ErrPolicyInvalid
// for the fetch, matching the RFC 8460 (TLS-RPT) result types
// "sts-policy-fetch-error", "sts-webpki-invalid" and "sts-policy-invalid".
// In each case the domain has no usable new policy and a policy cached
// earlier still applies.
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
