// Package metrics holds every Prometheus series Caliop exports, in one
// place, registered on a registry the caller gives (never the default
// one: two relays in one process do not see each other). Components take
// a *Metrics in their Options or Config; nil turns their metrics off.
//
// Names follow the Prometheus conventions: the caliop_ prefix, base units
// (seconds), _total on counters.
//
// # The domain label
//
// A domain label takes a bounded set of values (DESIGN.md invariant 6):
//
//  1. a domain listed in Options.Domains (metrics.domains) is always its
//     own value;
//  2. so are the busiest Options.TopDomains other domains
//     (metrics.top_domains, by default 50): free slots go to domains as
//     they are seen; once all are taken, a domain seen at least 10 times
//     and twice as often as the quietest slot holder (counted in a bounded
//     table) takes its slot, and the series of the domain that lost it
//     are dropped; a flood of domains seen once never moves a slot;
//  3. a domain whose MX host ends in a suffix of Options.Providers
//     (metrics.providers, e.g. ".google.com" → "google") is the
//     provider's name, and takes no slot: slots stay for domains with an
//     MX of their own (list a provider-hosted domain in metrics.domains to
//     see it apart);
//  4. everything else is "other".
//
// Each observation folded into a provider or "other" counts in
// caliop_metrics_domain_overflow_total. A series with a domain label has
// at most len(domains) + top_domains + len(providers) + 1 domain values.
// Inbound sending domains have top-domain slots of their own (senders
// choose their domain freely and must not take the destinations' slots);
// the null sender is "<>".
//
// Fixed labels (auth, policy, protection, result_type, result, decision,
// transport) only take the values listed below; anything else would be
// "other".
//
// # Series
//
//	| series | type | labels | meaning |
//	|---|---|---|---|
//	| `caliop_build_info` | gauge | `version` | always 1 |
//	| `caliop_outbound_sessions_total` | counter | `domain`, `tls_version` (1.2, 1.3, none), `auth` (none, encrypted, pkix, dane), `policy` (default, override, mta-sts-testing, mta-sts-enforce, dane) | new sessions to destination MX hosts that met the plan (reused connections are not new); auth is what the session proved: a TLSA match (dane), a WebPKI certificate valid for the MX name (pkix, also under the default policy), TLS only (encrypted), plaintext (none); policy is the strongest that applied to that MX: DANE, enforced MTA-STS, local override, MTA-STS testing, default ("TLS-Required: No" counts as default) |
//	| `caliop_delivered_messages_total` | counter | `domain`, `protection` (pgp, tls-authenticated, tls, plaintext) | messages accepted by a destination MX, under their strongest protection: pgp when PGP/MIME-encrypted (whatever the session), else tls-authenticated when the session's auth was dane or pkix, else tls, else plaintext |
//	| `caliop_delivered_recipients_total` | counter | `domain`, `protection` | recipients of those messages accepted |
//	| `caliop_delivery_failures_total` | counter | `domain`, `result_type` | recipients refused or deferred: the RFC 8460 result type of a TLS or policy failure (starttls-not-supported, certificate-host-mismatch, certificate-expired, certificate-not-trusted, validation-failure, tlsa-invalid, dnssec-invalid, dane-required, sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid), or dns (lookup failed, NXDOMAIN, null MX), network (connection failed, lost, timed out), refused (the destination said 4xx/5xx), policy (MTA-STS admits no MX or is required and missing, REQUIRETLS cannot be met, PGP required without key), other; when no MX took the message, the most telling failure of all MX hosts tried |
//	| `caliop_plaintext_deliveries_total` | counter | `domain` | messages delivered without TLS, which only a level none override allows; should stay 0 |
//	| `caliop_delivery_duration_seconds` | histogram | — | start of a delivery to its final replies |
//	| `caliop_delivery_recipients_total` | counter | `class` (2xx, 4xx, 5xx) | recipients given a final reply by the delivery engine |
//	| `caliop_mtasts_fetches_total` | counter | `result` (ok, fetch-error, invalid, webpki-invalid) | MTA-STS policy fetches made (a fetch held off after a recent failure is not counted) |
//	| `caliop_mtasts_policies` | gauge | `mode` (enforce, testing) | unexpired MTA-STS policies in the cache |
//	| `caliop_dane_verifications_total` | counter | `result` (match, mismatch, unusable, lookup-error) | per new session under usable TLSA records: the certificate matched or not; per plan and MX host: every TLSA record unusable, or the TLSA lookup failed (the host is then not tried) |
//	| `caliop_wkd_lookups_total` | counter | `result` (key, no-key, unknown) | WKD lookups made (cache misses and background refreshes); key also when the key found is refused by its pin |
//	| `caliop_wkd_lookup_duration_seconds` | histogram | — | time a WKD lookup took |
//	| `caliop_wkd_key_changes_total` | counter | — | keys that replaced a pinned key neither expired nor revoked |
//	| `caliop_pgp_messages_total` | counter | `decision` (encrypted, no-key, already-encrypted, autocrypt-setup, mailing-list, dkim) | outbound message copies by PGP decision, when PGP is on (one copy per destination route) |
//	| `caliop_inbound_sessions_total` | counter | `domain` (sending domain of MAIL FROM, `<>` for the null sender), `tls_version` (1.2, 1.3, none) | inbound transactions whose MAIL the next hop accepted |
//	| `caliop_auth_failures_total` | counter | `reason` (bad-credentials, rate-limited) | SMTP AUTH failures on the outbound listeners: an unknown user or a wrong password, or an attempt refused unchecked because its address failed too often |
//	| `caliop_tlsrpt_reports_total` | counter | `transport` (https, mailto), `result` (ok, error) | TLS-RPT reports sent |
//	| `caliop_certificate_expiry_timestamp_seconds` | gauge | `host` | expiry of the current inbound certificate of each host (Unix time) |
//	| `caliop_metrics_domain_overflow_total` | counter | — | observations whose domain label was folded into a provider or other |
//
// Delivery failures, durations and reply classes are counted per call of
// the delivery engine: a delivery tried again after an MTA-STS policy
// changed counts twice. Go runtime and process series are exported too
// (registered by cmd/caliop).
package metrics
