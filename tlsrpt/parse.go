package tlsrpt

// Parse reads reports as senders really write them. Known departures from
// the RFC 8460 §4.4 schema that are accepted:
//
//   - date-times without a zone ("2016-04-01T00:00:00"), or with a space
//     for the "T": taken as UTC;
//   - "mx-host" and "policy-string" as one string instead of an array
//     (the RFC's own example in Appendix C writes mx-host so);
//   - counts as strings of digits ("5326");
//   - a UTF-8 byte order mark before the JSON.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrMalformed: the data is not an RFC 8460 report, even read tolerantly.
// The sender's report is unusable; nothing is to be retried.
var ErrMalformed = errors.New("tlsrpt: malformed report")

// Parse decodes a JSON report (not gzipped; see Gunzip).
func Parse(b []byte) (*Report, error) {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.DateRange.Start.IsZero() || r.DateRange.End.IsZero() {
		return nil, fmt.Errorf("%w: no date-range", ErrMalformed)
	}
	for i, p := range r.Policies {
		if p.Policy.Type == "" {
			return nil, fmt.Errorf("%w: policies[%d]: no policy-type", ErrMalformed, i)
		}
	}
	return &r, nil
}

// UnmarshalJSON accepts date-times with or without a zone.
func (d *DateRange) UnmarshalJSON(b []byte) error {
	var raw struct {
		Start json.RawMessage `json:"start-datetime"`
		End   json.RawMessage `json:"end-datetime"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var err error
	if d.Start, err = parseDateTime(raw.Start); err != nil {
		return fmt.Errorf("start-datetime: %w", err)
	}
	if d.End, err = parseDateTime(raw.End); err != nil {
		return fmt.Errorf("end-datetime: %w", err)
	}
	return nil
}

// zoneless are the layouts tried after RFC 3339; times in them are UTC.
var zoneless = []string{
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func parseDateTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return time.Time{}, fmt.Errorf("not a string: %s", raw)
	}
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range zoneless {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date-time: %q", s)
}

// UnmarshalJSON accepts mx-host and policy-string as a string or an array.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var raw struct {
		Type   PolicyType      `json:"policy-type"`
		String json.RawMessage `json:"policy-string"`
		Domain string          `json:"policy-domain"`
		MXHost json.RawMessage `json:"mx-host"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	strs, err := stringList(raw.String)
	if err != nil {
		return fmt.Errorf("policy-string: %w", err)
	}
	mx, err := stringList(raw.MXHost)
	if err != nil {
		return fmt.Errorf("mx-host: %w", err)
	}
	*p = Policy{Type: raw.Type, String: strs, Domain: raw.Domain, MXHost: mx}
	return nil
}

// stringList reads a string, an array of strings or null.
func stringList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("neither a string nor an array of strings: %s", raw)
	}
	return list, nil
}

// UnmarshalJSON accepts counts as numbers or strings of digits.
func (s *Summary) UnmarshalJSON(b []byte) error {
	var raw struct {
		Successful json.RawMessage `json:"total-successful-session-count"`
		Failure    json.RawMessage `json:"total-failure-session-count"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	var err error
	if s.TotalSuccessful, err = count(raw.Successful); err != nil {
		return fmt.Errorf("total-successful-session-count: %w", err)
	}
	if s.TotalFailure, err = count(raw.Failure); err != nil {
		return fmt.Errorf("total-failure-session-count: %w", err)
	}
	return nil
}

// failureDetails has FailureDetails's fields without its methods.
type failureDetails FailureDetails

// UnmarshalJSON accepts failed-session-count as a number or a string.
func (f *FailureDetails) UnmarshalJSON(b []byte) error {
	var raw struct {
		failureDetails
		Count json.RawMessage `json:"failed-session-count"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	n, err := count(raw.Count)
	if err != nil {
		return fmt.Errorf("failed-session-count: %w", err)
	}
	*f = FailureDetails(raw.failureDetails)
	f.FailedSessionCount = n
	return nil
}

// count reads a non-negative count given as a number or a string; absent
// is 0.
func count(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	var quoted string
	if json.Unmarshal(raw, &quoted) == nil {
		s = strings.TrimSpace(quoted)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A number written as 5326.0 or 5.326e3.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != float64(int64(f)) {
			return 0, fmt.Errorf("not a count: %s", raw)
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative count: %s", raw)
	}
	return n, nil
}
