package pgpmime

import (
	"bytes"
	"errors"
	"mime"
	"strings"

	"github.com/caliop/relay/message"
)

// structural reports whether the field describes the MIME structure rather
// than the message: MIME-Version and Content-* (RFC 2045 §3, §4; RFC 9788
// calls them structural header fields). Encrypt moves them into the payload.
func structural(f message.Field) bool {
	n := strings.ToLower(f.Name)
	return n == "mime-version" || strings.HasPrefix(n, "content-")
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
func protectContentType(f *message.Field) []byte {
	if f == nil {
		return []byte("Content-Type: text/plain; charset=us-ascii; " + hpParam + "\r\n")
	}
	if typ, params, err := mime.ParseMediaType(f.Value); err == nil {
		if _, has := params["hp"]; has {
			params["hp"] = "cipher"
			if v := mime.FormatMediaType(typ, params); v != "" {
				return []byte("Content-Type: " + v + "\r\n")
			}
		}
	}
	raw := bytes.TrimRight(f.Raw, " \t\r\n")
	out := bytes.Clone(raw)
	if !bytes.HasSuffix(raw, []byte(";")) {
		out = append(out, ';')
	}
	return append(out, "\r\n "+hpParam+"\r\n"...)
}
