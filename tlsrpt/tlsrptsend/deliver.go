package tlsrptsend

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/caliop/relay/tlsrpt"
)

// deliverTimeout bounds one delivery to one rua.
const deliverTimeout = 5 * time.Minute

// ErrRefused: the receiver did not take the report (HTTP status not 2xx);
// retried later.
var ErrRefused = errors.New("report refused")

// deliver sends the gzipped report gz to one rua.
func (r *Sender) deliver(ctx context.Context, u *url.URL, domain string, rep *tlsrpt.Report, gz []byte) error {
	ctx, cancel := context.WithTimeout(ctx, deliverTimeout)
	defer cancel()
	switch strings.ToLower(u.Scheme) {
	case "https":
		return r.post(ctx, u.String(), gz)
	case "mailto":
		if r.o.SendMail == nil {
			return errors.New("sending reports by mail is not configured")
		}
		to := tlsrpt.MailtoAddress(u)
		msg := r.compose(to, domain, rep, gz)
		return r.o.SendMail(ctx, r.from(), to, msg)
	}
	return fmt.Errorf("unsupported rua scheme %q", u.Scheme)
}

// post sends the report by HTTPS POST (RFC 8460 §5.4).
func (r *Sender) post(ctx context.Context, uri string, gz []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", tlsrpt.MediaTypeGzip)
	req.Header.Set("User-Agent", "Caliop TLS-RPT")
	resp, err := r.o.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%w: HTTP %s", ErrRefused, resp.Status)
	}
	return nil
}

// from is the sender address of mailed reports.
func (r *Sender) from() string {
	if r.o.From != "" {
		return r.o.From
	}
	return "tlsrpt-noreply@" + r.o.Submitter
}

// compose writes the report message of RFC 8460 §5.3: multipart/report;
// report-type="tlsrpt" with a short text part and the report as an
// application/tlsrpt+gzip attachment named per §5.1, the headers
// TLS-Report-Domain and TLS-Report-Submitter, and "TLS-Required: No"
// (RFC 8689 §5) so that relays deliver it despite TLS failures, the very
// thing it may report.
func (r *Sender) compose(to, domain string, rep *tlsrpt.Report, gz []byte) []byte {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	submitter := r.o.Submitter
	day := rep.DateRange.Start.UTC().Format(time.DateOnly)

	text := textproto.MIMEHeader{}
	text.Set("Content-Type", "text/plain; charset=us-ascii")
	text.Set("Content-Transfer-Encoding", "7bit")
	w, _ := mw.CreatePart(text)
	fmt.Fprintf(w, "This is an aggregate TLS report (RFC 8460) from %s\r\nfor %s, %s (UTC).\r\n", submitter, domain, day)

	att := textproto.MIMEHeader{}
	att.Set("Content-Type", tlsrpt.MediaTypeGzip)
	att.Set("Content-Transfer-Encoding", "base64")
	att.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": tlsrpt.FileName(submitter, domain, rep.DateRange)}))
	w, _ = mw.CreatePart(att)
	writeBase64(w, gz)
	mw.Close()

	var m bytes.Buffer
	header := func(name, value string) { fmt.Fprintf(&m, "%s: %s\r\n", name, value) }
	header("From", (&mail.Address{Name: r.o.OrganizationName, Address: r.from()}).String())
	header("To", "<"+to+">")
	header("Date", r.o.Now().Format(time.RFC1123Z))
	// RFC 8460 §5.3, folded as in its example.
	header("Subject", "Report Domain: "+domain+"\r\n Submitter: "+submitter+"\r\n Report-ID: <"+rep.ReportID+">")
	header("Message-ID", "<tlsrpt."+randomID()+"@"+cmp.Or(submitter, "localhost")+">")
	header("TLS-Report-Domain", domain)
	header("TLS-Report-Submitter", submitter)
	header("TLS-Required", "No")
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", mime.FormatMediaType("multipart/report", map[string]string{"report-type": "tlsrpt", "boundary": mw.Boundary()}))
	m.WriteString("\r\n")
	m.Write(body.Bytes())
	return m.Bytes()
}

// writeBase64 writes b in base64 lines of 76 characters (RFC 2045 §6.8).
func writeBase64(w io.Writer, b []byte) {
	s := base64.StdEncoding.EncodeToString(b)
	for len(s) > 76 {
		io.WriteString(w, s[:76]+"\r\n")
		s = s[76:]
	}
	io.WriteString(w, s+"\r\n")
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
