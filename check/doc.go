// Package check diagnoses one destination domain the way Caliop's relay
// would deliver to it, for `caliop check DOMAIN [--json]`: what an
// operator or an observer wants to know in one command.
//
// Checker.Check looks up the domain's MX hosts and their addresses (and
// whether DNSSEC vouched for them), each MX host's TLSA records
// (DANE, RFC 7672), the MTA-STS record and policy (RFC 8461) and the
// TLS-RPT record (RFC 8460 §3); it asks the relay's own policy engine
// (policy.Engine.Plan) what each MX host must prove, and probes every
// address of every MX host, including the hosts the plan leaves out, with
// a diagnostic connection that says EHLO and STARTTLS and never MAIL
// (delivery.Deliverer.Probe). Nothing else is sent to anyone.
//
// # Verdict and exit status
//
// A plan error (null MX, no such domain, DNS failure, enforced MTA-STS
// policy admitting no MX host, TLSA lookups failing, DANE or MTA-STS
// required by local configuration and missing) refuses the domain.
// Otherwise the usable MX hosts are taken in preference order (host name
// among equal preferences; the relay picks at random among those), and
// the first one with an address whose probe passes its requirement
// decides, as delivery would:
//
//   - "authenticated" (exit 0): usable TLSA records and the chain passes
//     dane.Verify with the requirement's reference names (RFC 7672 §3), or
//     a requirement of at least verify (local verify, or MTA-STS enforce,
//     RFC 8461 §4.2) and a chain WebPKI-valid for the MX name;
//   - "encrypted" (exit 1): TLS works and the requirement is encrypt (or
//     secure TLSA records of which none is usable, RFC 7672 §2.2);
//   - "plaintext" (exit 1): only under a local override "none", for an MX
//     host that offers no STARTTLS; Caliop would deliver in clear;
//   - "refused" (exit 2): no MX host passes its requirement; the reason
//     names each MX host and why.
//
// A TLS version below the requirement's minimum fails the requirement.
// `caliop` itself also exits 2 on a usage or configuration error, which it
// reports on standard error prefixed "caliop:" with no report printed.
//
// # JSON report
//
// Report is printed with encoding/json; field names are stable:
//
//	domain, checked (RFC 3339 time), verdict, reason, policy_source
//	(policy.Source of the plan), mx_error,
//	mx[]: host, preference, implicit, dnssec (MX RRset authenticated),
//	      requirement (policy.Requirement.String()), usable, verdict,
//	      reason, sts_admitted (only when an MTA-STS policy applies),
//	      address_error,
//	      tlsa: name, secure, error, records[]: record ("3 1 1 ab…"), usable,
//	      addresses[]: address, dnssec (address lookup authenticated),
//	                   verdict, reason,
//	                   probe: error, starttls, tls_error, tls_version
//	                          ("TLS 1.3"), cipher, extensions,
//	                          certificate: subject, names (DNS SANs),
//	                                 issuer, chain (subjects above the
//	                                 leaf), not_before, not_after, expired,
//	                                 webpki_valid, webpki_error,
//	                          tlsa_match[]: record, depth (0 = leaf),
//	                          tlsa_verified, tlsa_error,
//	mta_sts: record, record_error, id, mode, mx (patterns), max_age
//	         (seconds), source (fetched | cached), expires, fetch_error,
//	tls_rpt: record (the TXT at _smtp._tls.<domain> starting
//	         "v=TLSRPTv1"), error,
//	learned: domain, mx, sessions, dane_sessions, encrypted, first_auth,
//	         last_auth, last_encrypted, requirement (verify | dane, none
//	         while learning), since (when anything was learned),
//	learned_requires: what that requires under learn.mode, in words.
//
// Per-address and per-MX verdicts use the same words as the report's;
// an MX host the plan does not use (outside an enforced MTA-STS policy,
// or whose TLSA lookup failed) is "refused" with the reason, and is still
// probed, to show it.
package check
