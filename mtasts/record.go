package mtasts

import (
	"errors"
	"fmt"
	"strings"
)

// Discovery errors: the TXT record at _mta-sts.<domain> (RFC 8461 §3.1).
// Each of them means "no MTA-STS record now"; a policy cached earlier still
// applies until it expires (RFC 8461 §5.1).
var (
	// ErrNoRecord: no TXT record starts with "v=STSv1", so the domain
	// does not publish MTA-STS. A cached policy still applies.
	ErrNoRecord = errors.New("mta-sts: no record")
	// ErrMultipleRecords: more than one TXT record starts with "v=STSv1".
	// RFC 8461 §3.1: treat the domain as having no record.
	ErrMultipleRecords = errors.New("mta-sts: more than one record")
	// ErrRecordSyntax: the one STS record is malformed. RFC 8461 §3.1:
	// treat the domain as having no record.
	ErrRecordSyntax = errors.New("mta-sts record invalid")
)

// Record is a parsed MTA-STS TXT record (RFC 8461 §3.1).
type Record struct {
	// ID identifies the policy instance: 1 to 32 letters and digits. A
	// changed ID tells the sender to fetch the policy again.
	ID string
	// Extensions holds the other fields (sts-extension) by name; nil when
	// there are none. Of a repeated name the first value is kept.
	Extensions map[string]string
}

const stsVersion = "v=STSv1"

// maxIDLen is the longest sts-id value (RFC 8461 §3.1: 1*32(ALPHA / DIGIT)).
const maxIDLen = 32

// isSTS reports whether txt is an MTA-STS record: its first field is
// exactly "v=STSv1". RFC 8461 §3.1 discards records that do not begin with
// "v=STSv1;", and its grammar allows white space before the ";"; so
// "v=STSv1 ; id=1" and "v=STSv1" are STS records (the second a malformed
// one) while "v=STSv10; id=1" is a record of another version.
func isSTS(txt string) bool {
	rest, ok := strings.CutPrefix(txt, stsVersion)
	return ok && (rest == "" || rest[0] == ';' || isWSP(rest[0]))
}

// SelectRecord picks and parses the MTA-STS record among all TXT records
// at _mta-sts.<domain>, each given as its strings joined without
// separator. RFC 8461 §3.1: records that do not begin with "v=STSv1" are
// discarded; if not exactly one remains (ErrNoRecord, ErrMultipleRecords)
// or it is malformed (ErrRecordSyntax), the domain has no record.
func SelectRecord(txts []string) (Record, error) {
	var sts []string
	for _, txt := range txts {
		if isSTS(txt) {
			sts = append(sts, txt)
		}
	}
	switch len(sts) {
	case 0:
		return Record{}, fmt.Errorf("%w: none of %d TXT records starts with %q", ErrNoRecord, len(txts), stsVersion)
	case 1:
		return ParseRecord(sts[0])
	default:
		return Record{}, fmt.Errorf("%w: %d TXT records start with %q, RFC 8461 §3.1 requires exactly one", ErrMultipleRecords, len(sts), stsVersion)
	}
}

// ParseRecord parses the text of one TXT record (its strings already
// joined) by the RFC 8461 §3.1 grammar:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field-delim = *WSP ";" *WSP
//
// A text that does not start with "v=STSv1" is not an MTA-STS record
// (ErrNoRecord); any other deviation is ErrRecordSyntax.
func ParseRecord(txt string) (Record, error) {
	if !isSTS(txt) {
		return Record{}, fmt.Errorf("%w: %q does not start with %q", ErrNoRecord, txt, stsVersion)
	}
	r, err := parseFields(txt[len(stsVersion):])
	if err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrRecordSyntax, err)
	}
	return r, nil
}

// parseFields parses what follows "v=STSv1".
func parseFields(rest string) (Record, error) {
	var r Record
	seenID := false
	for rest != "" {
		// sts-field-delim: *WSP ";" *WSP
		rest = trimWSP(rest)
		if rest == "" {
			return Record{}, errors.New(`white space after the last field without ";"`)
		}
		if rest[0] != ';' {
			return Record{}, fmt.Errorf(`fields must be separated by ";", found %q`, rest)
		}
		rest = trimWSP(rest[1:])
		if rest == "" {
			break // RFC 8461 §3.1: [sts-field-delim] after the last field
		}
		// A field holds no white space and no ";" (sts-id, sts-ext-value).
		end := strings.IndexAny(rest, " \t;")
		if end < 0 {
			end = len(rest)
		}
		field := rest[:end]
		rest = rest[end:]
		if field == "" {
			return Record{}, errors.New(`empty field between two ";"`)
		}
		name, value, ok := strings.Cut(field, "=")
		if !ok {
			return Record{}, fmt.Errorf(`field %q has no "="`, field)
		}
		if name == "id" { // %s"id=": case-sensitive
			if seenID {
				return Record{}, fmt.Errorf("duplicate id field %q", field)
			}
			if err := checkID(value); err != nil {
				return Record{}, err
			}
			r.ID, seenID = value, true
			continue
		}
		if err := checkExtension(name, value); err != nil {
			return Record{}, err
		}
		if _, dup := r.Extensions[name]; !dup {
			if r.Extensions == nil {
				r.Extensions = make(map[string]string)
			}
			r.Extensions[name] = value
		}
	}
	if !seenID {
		return Record{}, errors.New("no id field")
	}
	return r, nil
}

// checkID checks an sts-id value: 1*32(ALPHA / DIGIT) (RFC 8461 §3.1).
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("id is empty")
	case len(id) > maxIDLen:
		return fmt.Errorf("id %q is %d characters, at most %d", id, len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !isAlnum(id[i]) {
			return fmt.Errorf("id %q contains %q, only letters and digits are allowed", id, id[i])
		}
	}
	return nil
}

// checkExtension checks an sts-extension (RFC 8461 §3.1):
//
//	sts-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
func checkExtension(name, value string) error {
	if !validExtName(name) {
		return fmt.Errorf("field name %q is not 1 to 32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", name)
	}
	if value == "" {
		return fmt.Errorf("field %q has an empty value", name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return fmt.Errorf("value %q of field %q contains %q, not allowed in a record", value, name, c)
		}
	}
	return nil
}

// validExtName reports whether name is an sts-ext-name or
// sts-policy-ext-name (same grammar in RFC 8461 §3.1 and §3.2).
func validExtName(name string) bool {
	if name == "" || len(name) > 32 || !isAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isWSP reports whether c is WSP (RFC 5234: SP / HTAB).
func isWSP(c byte) bool { return c == ' ' || c == '\t' }

func trimWSP(s string) string { return strings.TrimLeft(s, " \t") }
