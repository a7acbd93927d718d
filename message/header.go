package message

import (
	"bufio"
	"io"
	"net/textproto"
	"strings"
)

// maxHeaderScan bounds how much of a message is read to find a header.
const maxHeaderScan = 256 << 10

// TLSRequiredNo reports whether the message's header section has a
// "TLS-Required: No" field (RFC 8689 §5; the field name is
// case-insensitive, the value "No" too). Only the header section is read,
// at most 256 KiB of it.
func TLSRequiredNo(r io.Reader) bool {
	h, err := textproto.NewReader(bufio.NewReader(io.LimitReader(r, maxHeaderScan))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return false
	}
	for _, v := range h.Values("Tls-Required") {
		if strings.EqualFold(strings.TrimSpace(v), "No") {
			return true
		}
	}
	return false
}
