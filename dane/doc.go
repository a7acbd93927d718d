// Package dane implements DANE for SMTP: "SMTP Security via Opportunistic
// DNS-Based Authentication of Named Entities (DANE) Transport Layer
// Security (TLS)", RFC 7672, with the TLSA record of RFC 6698 as updated by
// RFC 7671.
//
// # The attack it stops
//
// STARTTLS is offered in the clear, and an MX host name comes from DNS, so
// without DANE an active attacker between two MTAs can strip the STARTTLS
// offer (downgrade to plaintext) or complete the TLS handshake with a
// certificate of its own (man in the middle): the sending MTA has neither
// a reason to insist on TLS nor a trusted way to know which certificate is
// right (RFC 7672 §1.3). A DNSSEC-signed TLSA RRset at _25._tcp.<mx host>
// closes both holes: its presence says TLS is mandatory for that host, and
// its records say which certificate or public key the host must present
// (RFC 7672 §2.2). DNSSEC makes both statements tamper-proof; a forged
// denial or a forged record fails validation and is a lookup error, never
// a reason to deliver with less protection.
//
// # Use
//
// Lookup finds the TLSA RRset of one MX host; Verify checks the chain the
// host presented in the TLS handshake against it. What the caller does
// with each outcome (RFC 7672 §2.2):
//
//   - Lookup fails (ErrLookup): the MX host is unusable; try another MX or
//     retry later. Never fall back to a weaker policy for that host.
//   - RRSet.Secure and no records, or !RRSet.Secure: DANE does not apply
//     to the host; other policy (MTA-STS, local) decides.
//   - RRSet.Secure with records: TLS is mandatory. Verify returns nil when
//     the server is authenticated, ErrNoMatch when it is not (do not
//     deliver), and ErrNoUsable when every record is unusable (TLS is still
//     mandatory, but cannot be authenticated).
//
// # Decisions on points the RFCs leave open
//
//   - DANE-TA(2) never matches the leaf: a trust anchor is an issuer the
//     server sends after its own certificate (RFC 7672 §3.1.2, RFC 6698
//     §2.1.1); a domain that wants to pin the leaf publishes DANE-EE(3).
//     OpenSSL's DANE verifier (used by Postfix) matches DANE-TA(2) only
//     above depth 0 too.
//   - The trust anchor has no validity period (RFC 5280 §6.1.1(d): a
//     trust anchor is a name and a key): the certificate a DANE-TA(2)
//     record matches is used whatever its dates, while every certificate
//     below it, the leaf included, must be valid now. A server that still
//     sends an expired cross-signed root whose key the domain pins is
//     authenticated. OpenSSL (and so Postfix) agrees for a trust anchor
//     that is not self-signed, and checks the dates of a self-signed one
//     "in addition to RFC 5280"; Caliop follows the RFC there
//     (testdata/openssl records OpenSSL's verdict on each case). A trust
//     anchor given only as a public key ("2 1 0") has no dates either; the
//     certificate it signed then has its dates checked.
//   - Below the trust anchor, the chain must be fit for a TLS server, as
//     OpenSSL checks it for Postfix: the leaf's extended key usage, when
//     present, includes serverAuth or anyExtendedKeyUsage (a leaf for
//     clientAuth only is refused). DANE-EE(3) ignores EKU, like names and
//     dates (RFC 7672 §3.1.1).
//   - A trust anchor the server did not send is used when the record holds
//     it in full: "2 0 0" (the certificate, RFC 7671 §5.2.2, where clients
//     MUST support it) and "2 1 0" (the public key, RFC 7671 §5.2.3, which
//     the RFC recommends). Records with a digest of a certificate the
//     server did not send cannot match.
//   - Any one matching usable record authenticates the server (RFC 7672
//     §9.1), after digest algorithm agility (RFC 7671 §9, which RFC 7672 §5
//     makes binding on SMTP clients): for each usage and selector only the
//     strongest digest present counts (SHA2-512 over SHA2-256), and Full(0)
//     records always count.
package dane
