package tlsrpt

// The aggregate report of RFC 8460 §4: its JSON types, Marshal, and the
// names and media types it travels under (§5, §6).

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Media types of a report (RFC 8460 §6).
const (
	MediaTypeGzip = "application/tlsrpt+gzip"
	MediaTypeJSON = "application/tlsrpt+json"
)

// Report is an RFC 8460 §4.4 aggregate report.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// DateRange is the report's time range (RFC 8460 §4.4: RFC 3339
// date-times). A daily report covers 00:00:00Z to 23:59:59Z of one UTC
// day (§4.1).
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is the outcome of the sessions under one policy.
type PolicyResult struct {
	Policy         Policy           `json:"policy"`
	Summary        Summary          `json:"summary"`
	FailureDetails []FailureDetails `json:"failure-details,omitempty"`
}

// Policy describes the policy sessions were made under (RFC 8460 §4.4).
type Policy struct {
	Type PolicyType `json:"policy-type"`
	// String is the policy: the MTA-STS policy lines, or the TLSA
	// records, one per entry; empty for "no-policy-found".
	String []string `json:"policy-string,omitempty"`
	Domain string   `json:"policy-domain"`
	// MXHost lists the MX hosts or patterns the policy names.
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary counts the sessions under one policy.
type Summary struct {
	TotalSuccessful int64 `json:"total-successful-session-count"`
	TotalFailure    int64 `json:"total-failure-session-count"`
}

// FailureDetails is one group of alike failures (RFC 8460 §4.4).
type FailureDetails struct {
	ResultType            ResultType `json:"result-type"`
	SendingMTAIP          string     `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname   string     `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo       string     `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string     `json:"receiving-ip,omitempty"`
	FailedSessionCount    int64      `json:"failed-session-count"`
	AdditionalInformation string     `json:"additional-information,omitempty"`
	FailureReasonCode     string     `json:"failure-reason-code,omitempty"`
}

// dateTimeLayout is how reports write times: RFC 3339 in UTC, whole
// seconds, as in the RFC's example.
const dateTimeLayout = "2006-01-02T15:04:05Z"

// MarshalJSON writes both times in UTC.
func (d DateRange) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Start string `json:"start-datetime"`
		End   string `json:"end-datetime"`
	}{d.Start.UTC().Format(dateTimeLayout), d.End.UTC().Format(dateTimeLayout)})
}

// Marshal encodes r as compact JSON. An empty policy list is written as
// [], never null.
func Marshal(r *Report) ([]byte, error) {
	c := *r
	if c.Policies == nil {
		c.Policies = []PolicyResult{}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: marshal: %w", err)
	}
	return b, nil
}

// Day returns the report range of the UTC day holding t (RFC 8460 §4.1:
// "a full day, from 00:00 to 24:00 UTC").
func Day(t time.Time) DateRange {
	y, m, d := t.UTC().Date()
	start := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	return DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)}
}

// FileName is the report's file name (RFC 8460 §5.1):
//
//	sender "!" policy-domain "!" begin-timestamp "!" end-timestamp ".json.gz"
//
// with both domains in A-labels and the timestamps in Unix seconds. The
// optional unique-id is left out: one report per domain and day.
func FileName(sender, policyDomain string, r DateRange) string {
	return fmt.Sprintf("%s!%s!%d!%d.json.gz", aLabels(sender), aLabels(policyDomain), r.Start.Unix(), r.End.Unix())
}

// aLabels is name in Punycode A-labels (RFC 8460 §5.1), lowercase, without
// a trailing dot; a name that does not convert is left as it is.
func aLabels(name string) string {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if a, err := idna.Lookup.ToASCII(name); err == nil {
		return a
	}
	return name
}
