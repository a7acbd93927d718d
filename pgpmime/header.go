package pgpmime

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// field is one header field: raw holds its bytes as received, folding and
// line endings included; name and value are for inspection only (value is
// unfolded, RFC 5322 §2.2.3, and trimmed).
type field struct {
	raw   []byte
	name  string
	value string
}

// is reports whether the field has the given name; field names are
// case-insensitive.
func (f field) is(name string) bool { return strings.EqualFold(f.name, name) }

// structural reports whether the field describes the MIME structure rather
// than the message: MIME-Version and Content-* (RFC 2045 §3, §4; RFC 9788
// calls them structural header fields). Encrypt moves them into the payload.
func (f field) structural() bool {
	n := strings.ToLower(f.name)
	return n == "mime-version" || strings.HasPrefix(n, "content-")
}

// header is a message's header section.
type header struct {
	fields []field
	size   int // octets read, the separating empty line included
}

// get returns the unfolded value of the first field named name.
func (h header) get(name string) (string, bool) {
	for _, f := range h.fields {
		if f.is(name) {
			return f.value, true
		}
	}
	return "", false
}

// readHeader reads the header section, up to and including the first empty
// line (RFC 5322 §2.1). A message that ends without one has no body.
func readHeader(r *bufio.Reader) (header, error) {
	var h header
	for {
		line, err := r.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return h, err
		}
		h.size += len(line)
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
			if len(h.fields) == 0 {
				return h, fmt.Errorf("%w: header starts with a continuation line", ErrMalformed)
			}
			f := &h.fields[len(h.fields)-1]
			f.raw = append(f.raw, line...)
			f.value = strings.TrimSpace(f.value + " " + strings.TrimSpace(string(line)))
		} else {
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok || !validName(bytes.TrimRight(name, " \t")) {
				return h, fmt.Errorf("%w: header line without a field name: %.40q", ErrMalformed, line)
			}
			h.fields = append(h.fields, field{
				raw:   bytes.Clone(line),
				name:  string(bytes.TrimRight(name, " \t")), // WSP before the colon: RFC 5322 §4.5, obs-optional
				value: strings.TrimSpace(string(value)),
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

// mediaType is a parsed Content-Type (RFC 2045 §5.1).
type mediaType struct {
	typ    string // lower case, "type/subtype"
	params map[string]string
	ok     bool // the parameters parsed too
}

// parseContentType parses a Content-Type value. A missing one is text/plain
// (RFC 2045 §5.2); so is one whose type cannot be read (ditto). Parameters
// that cannot be read leave ok false and params empty.
func parseContentType(value string, present bool) mediaType {
	if !present {
		return mediaType{typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, ok: true}
	}
	typ, params, err := mime.ParseMediaType(value)
	switch {
	case err == nil:
		return mediaType{typ: typ, params: params, ok: true}
	case errors.Is(err, mime.ErrInvalidMediaParameter):
		return mediaType{typ: typ, params: map[string]string{}}
	default:
		return mediaType{typ: "text/plain", params: map[string]string{}}
	}
}

// hpParam is the parameter RFC 9788 §2.1.1 puts on the Content-Type of an
// encrypted Cryptographic Payload.
const hpParam = `hp="cipher"`

// protectContentType returns the Content-Type field of the Cryptographic
// Payload: the original field byte for byte with hp="cipher" appended as a
// folded parameter (RFC 9788 §2.1.1). Without an original field it writes the
// RFC 2045 §5.2 default; an original that already names hp is rewritten, as
// a repeated parameter would make the field unreadable (mime.ParseMediaType
// rejects it).
func protectContentType(f *field) []byte {
	if f == nil {
		return []byte("Content-Type: text/plain; charset=us-ascii; " + hpParam + "\r\n")
	}
	if typ, params, err := mime.ParseMediaType(f.value); err == nil {
		if _, has := params["hp"]; has {
			params["hp"] = "cipher"
			if v := mime.FormatMediaType(typ, params); v != "" {
				return []byte("Content-Type: " + v + "\r\n")
			}
		}
	}
	raw := bytes.TrimRight(f.raw, " \t\r\n")
	out := bytes.Clone(raw)
	if !bytes.HasSuffix(raw, []byte(";")) {
		out = append(out, ';')
	}
	return append(out, "\r\n "+hpParam+"\r\n"...)
}
