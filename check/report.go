package check

import (
	"time"

	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/policy"
)

// Verdicts, from the strongest; see the package documentation.
const (
	Authenticated = "authenticated"
	Encrypted     = "encrypted"
	Plaintext     = "plaintext"
	Refused       = "refused"
)

// Report is the diagnosis of one destination domain.
type Report struct {
	Domain  string    `json:"domain"`
	Checked time.Time `json:"checked"`
	Verdict string    `json:"verdict"`
	Reason  string    `json:"reason"`
	// PolicySource is the rule the plan came from (policy.Source).
	PolicySource string `json:"policy_source,omitempty"`
	// MXError is why the MX lookup failed.
	MXError string  `json:"mx_error,omitempty"`
	MX      []MX    `json:"mx"`
	MTASTS  *MTASTS `json:"mta_sts,omitempty"`
	TLSRPT  TLSRPT  `json:"tls_rpt"`
	// Learned is what Caliop learned of the domain (learned policies),
	// and Requires what that requires under learn.mode, when anything
	// was learned.
	Learned  *learned.Record `json:"learned,omitempty"`
	Requires string          `json:"learned_requires,omitempty"`
}

// ExitCode is the exit status of `caliop check`: 0 when Caliop would
// deliver with authentication, 1 when only encrypted (or in plaintext
// under an explicit override), 2 when it would refuse.
func (r Report) ExitCode() int {
	switch r.Verdict {
	case Authenticated:
		return 0
	case Encrypted, Plaintext:
		return 1
	}
	return 2
}

// MX is one MX host (or the implicit MX, RFC 5321 §5.1).
type MX struct {
	Host       string `json:"host"`
	Preference uint16 `json:"preference"`
	Implicit   bool   `json:"implicit,omitempty"`
	// DNSSEC: the MX RRset (for an implicit MX, the domain's
	// addresses) was DNSSEC-authenticated.
	DNSSEC bool `json:"dnssec"`
	// Requirement is what the plan requires of the host
	// (policy.Requirement.String()), "" when the plan leaves it out.
	Requirement string `json:"requirement,omitempty"`
	Usable      bool   `json:"usable"`
	Verdict     string `json:"verdict"`
	Reason      string `json:"reason"`
	// STSAdmitted: the MTA-STS policy's mx patterns match the host
	// (RFC 8461 §4.1); absent without a policy.
	STSAdmitted  *bool     `json:"sts_admitted,omitempty"`
	AddressError string    `json:"address_error,omitempty"`
	TLSA         *TLSA     `json:"tlsa,omitempty"`
	Addresses    []Address `json:"addresses"`

	req *policy.Requirement // nil: not in the plan
}

// TLSA is the TLSA RRset of an MX host (RFC 7672 §2.2).
type TLSA struct {
	Name    string       `json:"name"` // TLSA base domain: _25._tcp.<name>
	Secure  bool         `json:"secure"`
	Error   string       `json:"error,omitempty"`
	Records []TLSARecord `json:"records,omitempty"`
}

// TLSARecord is one TLSA record in presentation form.
type TLSARecord struct {
	Record string `json:"record"`
	Usable bool   `json:"usable"` // RFC 7672 §3.1
}

// Address is one address of an MX host and what its probe showed.
type Address struct {
	Address string `json:"address"`
	DNSSEC  bool   `json:"dnssec"`
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Probe   Probe  `json:"probe"`
}

// Probe is what a diagnostic connection saw.
type Probe struct {
	// Error: no SMTP session (connect, greeting, EHLO).
	Error       string       `json:"error,omitempty"`
	STARTTLS    bool         `json:"starttls"`
	TLSError    string       `json:"tls_error,omitempty"`
	TLSVersion  string       `json:"tls_version,omitempty"`
	Cipher      string       `json:"cipher,omitempty"`
	Extensions  []string     `json:"extensions,omitempty"`
	Certificate *Certificate `json:"certificate,omitempty"`
	// TLSAMatch lists every TLSA record matching a certificate of the
	// chain (dane.Match, whatever the usage); TLSAVerified is the
	// verdict of dane.Verify, present when secure records exist.
	TLSAMatch    []TLSAMatch `json:"tlsa_match,omitempty"`
	TLSAVerified *bool       `json:"tlsa_verified,omitempty"`
	TLSAError    string      `json:"tlsa_error,omitempty"`
}

// Certificate describes the leaf certificate the server presented.
type Certificate struct {
	Subject     string    `json:"subject"`
	Names       []string  `json:"names"`
	Issuer      string    `json:"issuer"`
	Chain       []string  `json:"chain,omitempty"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	Expired     bool      `json:"expired"`
	WebPKIValid bool      `json:"webpki_valid"`
	WebPKIError string    `json:"webpki_error,omitempty"`
}

// TLSAMatch is a record matching the certificate at Depth (0: the leaf).
type TLSAMatch struct {
	Record string `json:"record"`
	Depth  int    `json:"depth"`
}

// MTASTS is the domain's MTA-STS state (RFC 8461 §3, §5.1).
type MTASTS struct {
	Record      string    `json:"record,omitempty"`
	RecordError string    `json:"record_error,omitempty"`
	ID          string    `json:"id,omitempty"`
	Mode        string    `json:"mode,omitempty"`
	MX          []string  `json:"mx,omitempty"`
	MaxAge      int64     `json:"max_age,omitempty"` // seconds
	Source      string    `json:"source,omitempty"`  // fetched | cached
	Expires     time.Time `json:"expires,omitzero"`
	FetchError  string    `json:"fetch_error,omitempty"`
}

// TLSRPT is the domain's TLS-RPT record (RFC 8460 §3).
type TLSRPT struct {
	Record string `json:"record,omitempty"`
	Error  string `json:"error,omitempty"`
}
