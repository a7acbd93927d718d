package tlsrpt

// Reports received by mail (RFC 8460 §5.3): a multipart/report;
// report-type="tlsrpt" message with the report as an
// application/tlsrpt+gzip (or +json) part. Senders vary; accepted too:
// the report nested in multipart/mixed, the report as the whole message,
// and parts labelled application/gzip, application/json or
// application/octet-stream whose file name ends in .json.gz or .json.

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
)

// ErrNoReport: the message holds no part that is a TLS report.
var ErrNoReport = errors.New("tlsrpt: no report in message")

// maxMailSize bounds what ParseMail reads of a message.
const maxMailSize = 32 << 20

// maxDepth bounds multipart nesting.
const maxDepth = 5

// ParseMail finds and parses the report in a mail message.
func ParseMail(msg io.Reader) (*Report, error) {
	m, err := mail.ReadMessage(io.LimitReader(msg, maxMailSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return findReport(textproto.MIMEHeader(m.Header), m.Body, 0)
}

func findReport(h textproto.MIMEHeader, body io.Reader, depth int) (*Report, error) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxDepth || params["boundary"] == "" {
			return nil, ErrNoReport
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextPart decodes quoted-printable itself.
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil, ErrNoReport
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			r, err := findReport(p.Header, p, depth+1)
			if !errors.Is(err, ErrNoReport) {
				return r, err
			}
		}
	}
	if !isReportPart(mt, params, h) {
		return nil, ErrNoReport
	}
	if strings.EqualFold(strings.TrimSpace(h.Get("Content-Transfer-Encoding")), "base64") {
		body = base64.NewDecoder(base64.StdEncoding, &skipSpace{r: body})
	}
	b, err := io.ReadAll(io.LimitReader(body, maxMailSize))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return decode(b, 0)
}

// isReportPart reports whether a leaf part holds a report.
func isReportPart(mt string, params map[string]string, h textproto.MIMEHeader) bool {
	switch mt {
	case MediaTypeGzip, MediaTypeJSON:
		return true
	case "application/gzip", "application/x-gzip", "application/json", "application/octet-stream":
		name := params["name"]
		if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
			name = dp["filename"]
		}
		name = strings.ToLower(name)
		return strings.HasSuffix(name, ".json.gz") || strings.HasSuffix(name, ".json")
	}
	return false
}

// skipSpace drops the line breaks and blanks of a base64 body.
type skipSpace struct{ r io.Reader }

func (s *skipSpace) Read(p []byte) (int, error) {
	for {
		n, err := s.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}
