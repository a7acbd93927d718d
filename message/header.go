package message

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrMalformedHeader: the header section cannot be read as RFC 5322 (a
// line that is neither a field nor a continuation).
var ErrMalformedHeader = errors.New("malformed header section")

// Field is one header field: Raw holds its bytes as received, folding and
// line endings included; Name and Value are for inspection only (Value is
// unfolded, RFC 5322 §2.2.3, and trimmed).
type Field struct {
	Raw   []byte
	Name  string
	Value string
}

// Is reports whether the field has the given name; field names are
// case-insensitive.
func (f Field) Is(name string) bool { return strings.EqualFold(f.Name, name) }

// Header is a message's header section (RFC 5322 §2.2), parsed once per
// message and read by every step that looks at fields (the TLS-Required
// check, the PGP decision, the encryption).
type Header struct {
	Fields []Field
	Size   int // octets read, the separating empty line included
	// Err is why the section could not be read to its end (ReadHeader's
	// error); Fields then hold the fields before the bad line.
	Err error
}

// Get returns the unfolded value of the first field named name.
func (h Header) Get(name string) (string, bool) {
	for _, f := range h.Fields {
		if f.Is(name) {
			return f.Value, true
		}
	}
	return "", false
}

// Values returns the unfolded values of every field named name.
func (h Header) Values(name string) []string {
	var out []string
	for _, f := range h.Fields {
		if f.Is(name) {
			out = append(out, f.Value)
		}
	}
	return out
}

// ReadHeader reads the header section, up to and including the first empty
// line (RFC 5322 §2.1). A message that ends without one has no body. On
// error, the fields before the bad line are returned.
func ReadHeader(r *bufio.Reader) (Header, error) {
	h, err := readHeader(r)
	h.Err = err
	return h, err
}

func readHeader(r *bufio.Reader) (Header, error) {
	var h Header
	for {
		line, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return h, err
		}
		h.Size += len(line)
		if len(line) == 0 {
			return h, nil
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			line = append(line, '\r', '\n') // last line, unterminated
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			// RFC 5322 §2.2.3: a line starting with WSP continues a field.
			if len(h.Fields) == 0 {
				return h, fmt.Errorf("%w: header starts with a continuation line", ErrMalformedHeader)
			}
			f := &h.Fields[len(h.Fields)-1]
			f.Raw = append(f.Raw, line...)
			f.Value = strings.TrimSpace(f.Value + " " + strings.TrimSpace(string(line)))
		} else {
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok || !validName(bytes.TrimRight(name, " \t")) {
				return h, fmt.Errorf("%w: header line without a field name: %.40q", ErrMalformedHeader, line)
			}
			h.Fields = append(h.Fields, Field{
				Raw:   bytes.Clone(line),
				Name:  string(bytes.TrimRight(name, " \t")), // WSP before the colon: RFC 5322 §4.5, obs-optional
				Value: strings.TrimSpace(string(value)),
			})
		}
		if err != nil { // io.EOF without an empty line: header only
			return h, nil
		}
	}
}

// validName reports whether b is a field name: one or more printable
// US-ASCII characters other than colon (RFC 5322 §3.6.8, ftext).
func validName(b []byte) bool {
	for _, c := range b {
		if c < 33 || c > 126 {
			return false
		}
	}
	return len(b) > 0
}

// TLSRequiredNo reports whether h has a "TLS-Required: No" field (RFC 8689
// §5; the field name is case-insensitive, the value "No" too).
func (h Header) TLSRequiredNo() bool {
	for _, v := range h.Values("TLS-Required") {
		if strings.EqualFold(v, "No") {
			return true
		}
	}
	return false
}
