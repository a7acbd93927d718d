package tlsrpt

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// wrap76 cuts s into base64 lines.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

func TestParseMail(t *testing.T) {
	t.Parallel()
	example := readFixture(t, "rfc8460-example.json")
	gz := wrap76(base64.StdEncoding.EncodeToString(Gzip(example)))
	qp := strings.ReplaceAll(string(example), "=", "=3D")

	// RFC 8460 §5.3's example message, with the example report.
	rfc := "From: tlsrpt@mail.sender.example.com\r\n" +
		"Date: Fri, May 09 2017 16:54:30 -0800\r\n" +
		"To: mts-sts-tlsrpt@example.net\r\n" +
		"Subject: Report Domain: example.net\r\n Submitter: mail.sender.example.com\r\n Report-ID: <735ff.e317+bf22029@example.net>\r\n" +
		"TLS-Report-Domain: example.net\r\n" +
		"TLS-Report-Submitter: mail.sender.example.com\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n    boundary=\"----=_NextPart_000_024E_01CC9B0A.AFE54C00\"\r\n" +
		"Content-Language: en-us\r\n\r\n" +
		"This is a multipart message in MIME format.\r\n\r\n" +
		"------=_NextPart_000_024E_01CC9B0A.AFE54C00\r\n" +
		"Content-Type: text/plain; charset=\"us-ascii\"\r\n" +
		"Content-Transfer-Encoding: 7bit\r\n\r\n" +
		"This is an aggregate TLS report from mail.sender.example.com\r\n\r\n" +
		"------=_NextPart_000_024E_01CC9B0A.AFE54C00\r\n" +
		"Content-Type: application/tlsrpt+gzip\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment;\r\n    filename=\"mail.sender.example!example.com!1013662812!1013749130.json.gz\"\r\n\r\n" +
		gz + "\r\n" +
		"------=_NextPart_000_024E_01CC9B0A.AFE54C00--\r\n"

	// A sender nesting the report in multipart/mixed as a plain gzip file.
	nested := "From: r@sender.example\r\nTo: t@example.net\r\nSubject: TLS report\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain\r\n\r\nhello\r\n--inner--\r\n" +
		"--outer\r\nContent-Type: application/octet-stream; name=\"sender.example!example.net!1!2.json.gz\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + gz + "--outer--\r\n"

	// The report as the whole message, quoted-printable JSON.
	single := "From: r@sender.example\r\nTo: t@example.net\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=tlsrpt; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp + "\r\n--b--\r\n"

	for name, msg := range map[string]string{"rfc": rfc, "nested": nested, "quoted-printable json": single} {
		t.Run(name, func(t *testing.T) {
			r, err := ParseMail(strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if r.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" || len(r.Policies) != 1 || r.Policies[0].Summary.TotalSuccessful != 5326 {
				t.Errorf("report %+v", r)
			}
		})
	}

	noReport := "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n\r\n%PDF\r\n--x--\r\n"
	if _, err := ParseMail(strings.NewReader(noReport)); !errors.Is(err, ErrNoReport) {
		t.Errorf("no report: %v, want ErrNoReport", err)
	}
	broken := strings.Replace(rfc, gz, wrap76(base64.StdEncoding.EncodeToString([]byte("not gzip, not json"))), 1)
	if _, err := ParseMail(strings.NewReader(broken)); !errors.Is(err, ErrMalformed) {
		t.Errorf("broken attachment: %v, want ErrMalformed", err)
	}
}
