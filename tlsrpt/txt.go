package tlsrpt

// The TLS-RPT policy record (RFC 8460 §3):
//
//	_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=mailto:reports@example.com,https://reports.example.com/tlsrpt"

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Errors of the record lookup. Each means the domain does not take
// reports (RFC 8460 §3): nothing is sent and nothing retried.
var (
	// ErrNoRecord: no TXT record at _smtp._tls.<domain> begins with
	// "v=TLSRPTv1".
	ErrNoRecord = errors.New("no v=TLSRPTv1 record")
	// ErrMultipleRecords: more than one does; RFC 8460 §3 then says the
	// domain does not implement TLS-RPT.
	ErrMultipleRecords = errors.New("more than one v=TLSRPTv1 record")
	// ErrBadRecord: the record does not parse or names no mailto: or
	// https: URI.
	ErrBadRecord = errors.New("invalid v=TLSRPTv1 record")
)

// RecordName is where domain publishes its TLS-RPT record.
func RecordName(domain string) string {
	return "_smtp._tls." + strings.TrimSuffix(domain, ".")
}

// TXTRecord is a parsed TLS-RPT record.
type TXTRecord struct {
	// RUA are the report URIs, mailto: and https: only, in record order.
	// Others (RFC 8460 §3 allows future schemes) are left out.
	RUA []*url.URL
}

// SelectTXT picks the TLS-RPT record among the TXT records found at
// RecordName: those not beginning with "v=TLSRPTv1" are discarded and
// exactly one must remain (RFC 8460 §3).
func SelectTXT(txts []string) (TXTRecord, error) {
	var found []string
	for _, t := range txts {
		if rest, ok := strings.CutPrefix(t, "v=TLSRPTv1"); ok && (rest == "" || strings.ContainsAny(rest[:1], " \t;")) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return TXTRecord{}, ErrNoRecord
	case 1:
		return ParseTXT(found[0])
	}
	return TXTRecord{}, fmt.Errorf("%w: %d records", ErrMultipleRecords, len(found))
}

// ParseTXT parses one record (RFC 8460 §3):
//
//	tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim   = *WSP ";" *WSP
//	tlsrpt-rua    = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//
// Extension fields (name=value) are skipped.
func ParseTXT(txt string) (TXTRecord, error) {
	fields := strings.Split(txt, ";")
	if strings.Trim(fields[0], " \t") != "v=TLSRPTv1" {
		return TXTRecord{}, fmt.Errorf("%w: does not begin with v=TLSRPTv1", ErrBadRecord)
	}
	var rec TXTRecord
	seen := false
	for _, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			continue // a trailing field-delim
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return TXTRecord{}, fmt.Errorf("%w: field %q", ErrBadRecord, f)
		}
		if name != "rua" {
			continue
		}
		if seen {
			return TXTRecord{}, fmt.Errorf("%w: rua given twice", ErrBadRecord)
		}
		seen = true
		for _, s := range strings.Split(value, ",") {
			u, err := url.Parse(strings.Trim(s, " \t"))
			if err != nil {
				return TXTRecord{}, fmt.Errorf("%w: rua %q: %w", ErrBadRecord, s, err)
			}
			switch strings.ToLower(u.Scheme) {
			case "mailto":
				if mailtoAddress(u) != "" {
					rec.RUA = append(rec.RUA, u)
				}
			case "https":
				if u.Host != "" {
					rec.RUA = append(rec.RUA, u)
				}
			}
		}
	}
	if len(rec.RUA) == 0 {
		return TXTRecord{}, fmt.Errorf("%w: no mailto: or https: rua", ErrBadRecord)
	}
	return rec, nil
}

// MailtoAddress is the address of a mailto: URI ("" if u is not one):
// RFC 6068 without the query ("?subject=..." is ignored).
func MailtoAddress(u *url.URL) string {
	if !strings.EqualFold(u.Scheme, "mailto") {
		return ""
	}
	return mailtoAddress(u)
}

func mailtoAddress(u *url.URL) string {
	a := u.Opaque
	if a == "" {
		a = u.Path
	}
	if s, err := url.PathUnescape(a); err == nil {
		a = s
	}
	if !strings.Contains(a, "@") || strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f || strings.ContainsRune(" ,<>", r) }) {
		return ""
	}
	return a
}
