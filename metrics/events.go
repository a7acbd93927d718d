package metrics

import (
	"crypto/tls"
	"slices"
	"strconv"
	"time"

	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/tlsrpt"
)

// What an outbound session proved (label auth).
const (
	AuthNone      = "none"      // plaintext (level none override only)
	AuthEncrypted = "encrypted" // TLS, certificate not authenticated
	AuthPKIX      = "pkix"      // certificate WebPKI-valid for the MX host name
	AuthDANE      = "dane"      // certificate matched usable TLSA records
)

// The policy an outbound session was under (label policy), strongest
// first: DANE for the MX host, an enforced MTA-STS policy, a local
// override, an MTA-STS policy in testing mode, the default.
const (
	PolicyDANE       = "dane"
	PolicySTSEnforce = "mta-sts-enforce"
	PolicyOverride   = "override"
	PolicySTSTesting = "mta-sts-testing"
	PolicyDefault    = "default"
)

// The strongest protection a delivered message had (label protection):
// PGP/MIME encryption, whatever the session; else TLS whose certificate
// was authenticated (auth dane or pkix); else TLS; else none.
const (
	ProtectionPGP           = "pgp"
	ProtectionAuthenticated = "tls-authenticated"
	ProtectionTLS           = "tls"
	ProtectionPlaintext     = "plaintext"
)

// Failure result types beyond RFC 8460's (label result_type of
// caliop_delivery_failures_total). The RFC 8460 §4.3 types
// (tlsrpt.ResultType) are used as they are for TLS and policy failures.
const (
	FailureDNS     = "dns"     // MX or address lookup failed, or the domain takes no mail
	FailureNetwork = "network" // connection failed, lost or timed out
	FailureRefused = "refused" // the destination said 4xx or 5xx
	FailurePolicy  = "policy"  // a local or published policy refused it (MTA-STS admits no MX, PGP required)
	FailureOther   = "other"
)

// DANE results (label result of caliop_dane_verifications_total).
const (
	DANEMatch       = "match"
	DANEMismatch    = "mismatch"
	DANEUnusable    = "unusable"
	DANELookupError = "lookup-error"
)

// MTA-STS fetch results (label result of caliop_mtasts_fetches_total).
const (
	STSFetchOK       = "ok"
	STSFetchError    = "fetch-error"
	STSInvalid       = "invalid"
	STSWebPKIInvalid = "webpki-invalid"
)

// WKD lookup results (label result of caliop_wkd_lookups_total).
const (
	WKDKey     = "key"
	WKDNoKey   = "no-key"
	WKDUnknown = "unknown"
)

// TLS-RPT report transports (label transport of caliop_tlsrpt_reports_total).
const (
	TLSRPTHTTPS  = "https"
	TLSRPTMailto = "mailto"
)

// The values each fixed label may take; anything else becomes "other", so
// that no caller can grow a series set by mistake.
var (
	authValues       = []string{AuthNone, AuthEncrypted, AuthPKIX, AuthDANE}
	policyValues     = []string{PolicyDANE, PolicySTSEnforce, PolicyOverride, PolicySTSTesting, PolicyDefault}
	protectionValues = []string{ProtectionPGP, ProtectionAuthenticated, ProtectionTLS, ProtectionPlaintext}
	// The RFC 8460 result types (tlsrpt owns them), then Caliop's own.
	failureValues = append(strs(tlsrpt.ResultTypes),
		FailureDNS, FailureNetwork, FailureRefused, FailurePolicy, FailureOther)
	stsFetchResults  = []string{STSFetchOK, STSFetchError, STSInvalid, STSWebPKIInvalid}
	daneResults      = []string{DANEMatch, DANEMismatch, DANEUnusable, DANELookupError}
	wkdResults       = []string{WKDKey, WKDNoKey, WKDUnknown}
	pgpDecisions     = strs(pgpmime.Decisions)
	tlsrptTransports = []string{TLSRPTHTTPS, TLSRPTMailto}
)

// strs converts a list of string-typed values.
func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

func oneOf(v string, values []string) string {
	if slices.Contains(values, v) {
		return v
	}
	return "other"
}

// TLSVersion is the tls_version label of a negotiated version, 0 for a
// plaintext session: "1.2", "1.3", "none" (or "other").
func TLSVersion(v uint16) string {
	switch v {
	case 0:
		return "none"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return "other"
}

// Destination is the domain an outbound event is about and its MX hosts,
// which group hosted domains under a provider (Options.Providers); MXs may
// be nil.
type Destination struct {
	Domain string
	MXs    []string
}

// Session is one new outbound session that met the plan.
type Session struct {
	Destination
	TLSVersion uint16 // 0 in plaintext
	Auth       string // AuthNone, AuthEncrypted, AuthPKIX, AuthDANE
	Policy     string // PolicyDANE, ...
}

// OutboundSession counts a new session to a destination MX
// (caliop_outbound_sessions_total).
func (m *Metrics) OutboundSession(s Session) {
	if m == nil {
		return
	}
	d := m.Domain(s.Domain, s.MXs)
	m.outSessions.WithLabelValues(d, TLSVersion(s.TLSVersion), oneOf(s.Auth, authValues), oneOf(s.Policy, policyValues)).Inc()
}

// Delivered counts one message accepted by a destination MX for
// recipients recipients, under its strongest protection
// (caliop_delivered_messages_total, caliop_delivered_recipients_total).
func (m *Metrics) Delivered(dst Destination, protection string, recipients int) {
	if m == nil || recipients <= 0 {
		return
	}
	d, p := m.Domain(dst.Domain, dst.MXs), oneOf(protection, protectionValues)
	m.deliveredMsgs.WithLabelValues(d, p).Inc()
	m.deliveredRcpts.WithLabelValues(d, p).Add(float64(recipients))
}

// Failed counts recipients refused or deferred
// (caliop_delivery_failures_total); resultType is an RFC 8460 result type
// or one of the Failure constants.
func (m *Metrics) Failed(dst Destination, resultType string, recipients int) {
	if m == nil || recipients <= 0 {
		return
	}
	m.failures.WithLabelValues(m.Domain(dst.Domain, dst.MXs), oneOf(resultType, failureValues)).Add(float64(recipients))
}

// Plaintext counts a message delivered without TLS
// (caliop_plaintext_deliveries_total).
func (m *Metrics) Plaintext(dst Destination) {
	if m == nil {
		return
	}
	m.plaintext.WithLabelValues(m.Domain(dst.Domain, dst.MXs)).Inc()
}

// DeliveryFinished observes one delivery's duration and the final reply
// code of each of its recipients (caliop_delivery_duration_seconds,
// caliop_delivery_recipients_total).
func (m *Metrics) DeliveryFinished(d time.Duration, codes []int) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	for _, c := range codes {
		class := "other"
		if c >= 200 && c < 600 {
			class = strconv.Itoa(c/100) + "xx"
		}
		m.replies.WithLabelValues(class).Inc()
	}
}

// MTASTSFetch counts a policy fetch (caliop_mtasts_fetches_total).
func (m *Metrics) MTASTSFetch(result string) {
	if m != nil {
		m.stsFetches.WithLabelValues(oneOf(result, stsFetchResults)).Inc()
	}
}

// DANE counts a DANE result (caliop_dane_verifications_total).
func (m *Metrics) DANE(result string) {
	if m != nil {
		m.dane.WithLabelValues(oneOf(result, daneResults)).Inc()
	}
}

// WKDLookup counts a WKD lookup and observes how long it took
// (caliop_wkd_lookups_total, caliop_wkd_lookup_duration_seconds).
func (m *Metrics) WKDLookup(result string, d time.Duration) {
	if m == nil {
		return
	}
	m.wkdLookups.WithLabelValues(oneOf(result, wkdResults)).Inc()
	m.wkdDuration.Observe(d.Seconds())
}

// WKDKeyChange counts a key that replaced a pinned one still valid
// (caliop_wkd_key_changes_total).
func (m *Metrics) WKDKeyChange() {
	if m != nil {
		m.wkdChanges.Inc()
	}
}

// PGP counts the PGP decision for one outbound message copy
// (caliop_pgp_messages_total).
func (m *Metrics) PGP(decision string) {
	if m != nil {
		m.pgp.WithLabelValues(oneOf(decision, pgpDecisions)).Inc()
	}
}

// InboundSession counts an inbound transaction from sender domain ("" for
// the null sender) over TLS version tlsVersion (0: plaintext)
// (caliop_inbound_sessions_total). Sending domains have top-domain slots
// of their own, so that senders cannot take the outbound ones.
func (m *Metrics) InboundSession(domain string, tlsVersion uint16) {
	if m == nil {
		return
	}
	d := NullSender
	if domain != "" {
		d = m.fold(m.senders, domain, nil)
	}
	m.inSessions.WithLabelValues(d, TLSVersion(tlsVersion)).Inc()
}

// TLSRPTReport counts a TLS-RPT report sent over transport (TLSRPTHTTPS,
// TLSRPTMailto); err is the outcome (caliop_tlsrpt_reports_total).
func (m *Metrics) TLSRPTReport(transport string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.tlsrpt.WithLabelValues(oneOf(transport, tlsrptTransports), result).Inc()
}

// TLSRPTReceived counts what another sender reported of its sessions to an
// inbound domain (caliop_tlsrpt_received_sessions_total): successes, and
// failures by RFC 8460 result type. domain is one of the operator's
// inbound domains (the receiver drops the others), so the label is
// bounded; the reporter's name is not a label (senders choose it freely).
func (m *Metrics) TLSRPTReceived(domain string, successes int64, failures map[string]int64) {
	if m == nil {
		return
	}
	m.tlsrptReceived.WithLabelValues(domain, "success").Add(float64(successes))
	for result, n := range failures {
		m.tlsrptReceived.WithLabelValues(domain, oneOf(result, failureValues)).Add(float64(n))
	}
}

// TLSRPTPublished records whether a destination domain publishes a TLS-RPT
// record (caliop_partner_tlsrpt_published), under its bounded label; for a
// folded label the gauge says whether any domain folded into it does.
func (m *Metrics) TLSRPTPublished(dst Destination, published bool) {
	if m == nil {
		return
	}
	v := m.fold(m.dest, dst.Domain, dst.MXs)
	g := m.tlsrptPartner.WithLabelValues(v)
	if published {
		g.Set(1)
	} else if v != Other && !m.dest.isProvider(v) {
		g.Set(0)
	}
}

// Reasons of caliop_auth_failures_total.
const (
	AuthBadCredentials = "bad-credentials" // unknown user or wrong password
	AuthRateLimited    = "rate-limited"    // refused before checking: too many failures from the address
)

var authReasons = []string{AuthBadCredentials, AuthRateLimited}

// AuthFailure counts an SMTP AUTH failure (caliop_auth_failures_total).
func (m *Metrics) AuthFailure(reason string) {
	if m != nil {
		m.authFailures.WithLabelValues(oneOf(reason, authReasons)).Inc()
	}
}
