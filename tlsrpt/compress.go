package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// MaxReportSize bounds a report after decompression: a day of one
// sender's sessions with one domain is far smaller, and a gzip bomb is
// stopped here.
const MaxReportSize = 16 << 20

// ErrTooLarge: a report is larger than allowed, before or after
// decompression; it is refused whole.
var ErrTooLarge = errors.New("tlsrpt: report too large")

// Gzip compresses a report for application/tlsrpt+gzip (RFC 8460 §5).
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b) // writes to a bytes.Buffer do not fail
	zw.Close()
	return buf.Bytes()
}

// Gunzip decompresses b, refusing more than limit bytes of output
// (MaxReportSize if limit <= 0).
func Gunzip(b []byte, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = MaxReportSize
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %w", ErrMalformed, err)
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes uncompressed", ErrTooLarge, limit)
	}
	return out, nil
}

// isGzip reports whether b starts with the gzip magic number (RFC 1952
// §2.3.1), for senders whose media type does not say.
func isGzip(b []byte) bool {
	return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b
}

// decode parses a report that may or may not be gzipped.
func decode(b []byte, limit int64) (*Report, error) {
	if isGzip(b) {
		var err error
		if b, err = Gunzip(b, limit); err != nil {
			return nil, err
		}
	}
	return Parse(b)
}
