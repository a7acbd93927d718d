package server

import (
	"bytes"
	"encoding/base64"
	"mime/multipart"
	"net/http/httptest"
	"net/textproto"
	"os"
	"strings"
	"testing"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/tlsrpt"
)

// TestReceiveTLSRPTMail: a report mail on standard input reaches the
// relay's /tlsrpt endpoint as a gzipped report; a mail without a report
// is refused with 65, an unreachable relay gives 75 (Postfix retries).
func TestReceiveTLSRPTMail(t *testing.T) {
	var got *tlsrpt.Report
	rcv := &tlsrpt.Receiver{Domains: []string{"company-y.example"}, Path: tlsrpt.DefaultPath, Sink: tlsrpt.ReceivedFunc(func(r *tlsrpt.Report) { got = r })}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	cfg := &config.Config{Metrics: config.Metrics{Listen: strings.TrimPrefix(srv.URL, "http://")}}

	js, err := os.ReadFile("../tlsrpt/testdata/rfc8460-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	tw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/plain"}})
	tw.Write([]byte("This is an aggregate TLS report.\r\n"))
	aw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {tlsrpt.MediaTypeGzip}, "Content-Transfer-Encoding": {"base64"}, "Content-Disposition": {`attachment; filename="r.json.gz"`}})
	aw.Write([]byte(base64.StdEncoding.EncodeToString(tlsrpt.Gzip(js))))
	mw.Close()
	mail := "TLS-Report-Domain: company-y.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"" + mw.Boundary() + "\"\r\n\r\n" + body.String()
	code, err := ReceiveTLSRPTMail(cfg, strings.NewReader(string(mail)))
	if code != 0 || err != nil || got == nil {
		t.Fatalf("report mail: exit %d, %v, received %v", code, err, got != nil)
	}
	if code, _ := ReceiveTLSRPTMail(cfg, strings.NewReader("Subject: hi\r\n\r\nno report\r\n")); code != 65 {
		t.Errorf("mail without a report: exit %d, want 65", code)
	}
	srv.Close()
	if code, _ := ReceiveTLSRPTMail(cfg, strings.NewReader(string(mail))); code != 75 {
		t.Errorf("relay unreachable: exit %d, want 75", code)
	}
}
