package pgpmime

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// A text/plain ISO-8859-1 quoted-printable message with a folded field.
var (
	qpFields = crlf(
		"Received: from mua.example.test by relay.example.test;",
		" Mon, 02 Mar 2026 10:00:00 +0000",
		"From: =?ISO-8859-1?Q?Ren=E9e?= <renee@example.test>",
		"To: a@example.test",
		"Subject: =?ISO-8859-1?Q?R=E9union?= demain",
		"Date: Mon, 02 Mar 2026 11:00:00 +0100",
		"Message-ID: <qp@example.test>", "")
	qpMessage = qpFields + crlf(
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=ISO-8859-1",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"Bonjour,",
		"",
		"La r=E9union est d=E9plac=E9e =E0 10=A0h, salle =",
		"B=E9b=E9.", "")
	qpHPOuter = crlf(
		"HP-Outer: Received: from mua.example.test by relay.example.test;",
		" Mon, 02 Mar 2026 10:00:00 +0000",
		"HP-Outer: From: =?ISO-8859-1?Q?Ren=E9e?= <renee@example.test>",
		"HP-Outer: To: a@example.test",
		"HP-Outer: Subject: =?ISO-8859-1?Q?R=E9union?= demain",
		"HP-Outer: Date: Mon, 02 Mar 2026 11:00:00 +0100",
		"HP-Outer: Message-ID: <qp@example.test>", "")
	qpEntity = crlf(
		"Content-Type: text/plain; charset=ISO-8859-1;",
		` hp="cipher"`,
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"Bonjour,",
		"",
		"La r=E9union est d=E9plac=E9e =E0 10=A0h, salle =",
		"B=E9b=E9.", "")
)

// multipart/mixed: an HTML alternative and a base64 attachment.
var (
	mixedFields = crlf(
		"From: a@example.test",
		"To: c@example.test",
		"Subject: Rapport",
		"Message-ID: <mixed@example.test>", "")
	mixedBody = crlf(
		"This is a multi-part message in MIME format.",
		"--mix",
		`Content-Type: multipart/alternative; boundary="alt"`,
		"",
		"--alt",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: 8bit",
		"",
		"Voil\u00e0 le rapport.",
		"--alt",
		"Content-Type: text/html; charset=utf-8",
		"",
		"<p>Voil&agrave; le <b>rapport</b>.</p>",
		"--alt--",
		"",
		"--mix",
		`Content-Type: application/pdf; name="r.pdf"`,
		`Content-Disposition: attachment; filename="r.pdf"`,
		"Content-Transfer-Encoding: base64",
		"",
		"JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==",
		"--mix--", "")
	mixedMessage = mixedFields + crlf(
		"Content-Type: multipart/mixed; boundary=\"mix\"",
		"MIME-Version: 1.0",
		"", "") + mixedBody
)

// signedMessage is a multipart/signed message (RFC 3156 §5) whose detached
// signature by S covers signedPart.
const signedPart = "Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Sign=C3=A9 puis chiffr=C3=A9.\r\n"

var signedBody = sync.OnceValue(func() string {
	var sig bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&sig, []*openpgp.Entity{key("S")}, strings.NewReader(signedPart), nil); err != nil {
		panic(err)
	}
	return crlf(
		"--sig",
		signedPart, // the CRLF before the next delimiter is the delimiter's (RFC 2046 §5.1.1)
		"--sig",
		"Content-Type: application/pgp-signature; name=\"signature.asc\"",
		"",
		strings.ReplaceAll(sig.String(), "\n", "\r\n")+"--sig--", "")
})

const signedFields = "From: s@example.test\r\nTo: a@example.test\r\nSubject: signed\r\n"

func signedMessage() string {
	return signedFields + crlf(
		"MIME-Version: 1.0",
		"Content-Type: multipart/signed; micalg=pgp-sha256;",
		` protocol="application/pgp-signature"; boundary="sig"`,
		"", "") + signedBody()
}

func TestEncryptRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		msg       func() string
		opts      Options
		wantOuter string // outer header fields above MIME-Version
		wantInner func() string
		verify    func(t *testing.T, inner string)
	}{
		{
			name:      "text/plain ISO-8859-1 quoted-printable",
			msg:       func() string { return qpMessage },
			wantOuter: qpFields,
			wantInner: func() string { return qpFields + qpHPOuter + qpEntity },
		},
		{
			name: "HideSubject: outer [...], inner original (RFC 9788 hcp_baseline)",
			msg:  func() string { return qpMessage },
			opts: Options{HideSubject: true},
			wantOuter: strings.Replace(qpFields,
				"Subject: =?ISO-8859-1?Q?R=E9union?= demain", "Subject: [...]", 1),
			wantInner: func() string {
				return qpFields + strings.Replace(qpHPOuter,
					"Subject: =?ISO-8859-1?Q?R=E9union?= demain", "Subject: [...]", 1) + qpEntity
			},
		},
		{
			name:      "multipart/mixed with HTML and an attachment",
			msg:       func() string { return mixedMessage },
			wantOuter: mixedFields,
			wantInner: func() string {
				return mixedFields +
					"HP-Outer: From: a@example.test\r\nHP-Outer: To: c@example.test\r\n" +
					"HP-Outer: Subject: Rapport\r\nHP-Outer: Message-ID: <mixed@example.test>\r\n" +
					"Content-Type: multipart/mixed; boundary=\"mix\";\r\n hp=\"cipher\"\r\n" +
					"\r\n" + mixedBody
			},
		},
		{
			name:      "multipart/signed stays verifiable (RFC 3156 §5)",
			msg:       signedMessage,
			wantOuter: signedFields,
			wantInner: func() string {
				return signedFields +
					"HP-Outer: From: s@example.test\r\nHP-Outer: To: a@example.test\r\nHP-Outer: Subject: signed\r\n" +
					"Content-Type: multipart/signed; micalg=pgp-sha256;\r\n" +
					" protocol=\"application/pgp-signature\"; boundary=\"sig\";\r\n hp=\"cipher\"\r\n" +
					"\r\n" + signedBody()
			},
			verify: func(t *testing.T, inner string) {
				_, body, _ := strings.Cut(inner, "\r\n\r\n")
				_, rest, _ := strings.Cut(body, "--sig\r\n")
				signed, rest, _ := strings.Cut(rest, "\r\n--sig\r\n")
				_, sig, _ := strings.Cut(rest, "\r\n\r\n")
				sig, _, _ = strings.Cut(sig, "\r\n--sig--")
				if signed != signedPart {
					t.Errorf("signed part after decryption = %q, want %q", signed, signedPart)
				}
				if _, _, err := openpgp.VerifyArmoredDetachedSignature(openpgp.EntityList{key("S")},
					strings.NewReader(signed), strings.NewReader(sig), nil); err != nil {
					t.Errorf("signature over the decrypted part: %v", err)
				}
				if _, _, err := openpgp.VerifyArmoredDetachedSignature(openpgp.EntityList{key("S")},
					strings.NewReader(strings.Replace(signed, "puis", "PUIS", 1)), strings.NewReader(sig), nil); err == nil {
					t.Error("a tampered part verified: the check proves nothing")
				}
			},
		},
		{
			name:      "no MIME fields: the RFC 2045 §5.2 default Content-Type",
			msg:       func() string { return "From: a@example.test\r\nSubject: hi\r\n\r\nplain\r\n" },
			wantOuter: "From: a@example.test\r\nSubject: hi\r\n",
			wantInner: func() string {
				return "From: a@example.test\r\nSubject: hi\r\n" +
					"HP-Outer: From: a@example.test\r\nHP-Outer: Subject: hi\r\n" +
					"Content-Type: text/plain; charset=us-ascii; hp=\"cipher\"\r\n\r\nplain\r\n"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			d, err := Encrypt(&out, strings.NewReader(tt.msg()), []*openpgp.Entity{key("A")}, tt.opts)
			if err != nil || d != Encrypted {
				t.Fatalf("Encrypt = %q, %v; want %q", d, err, Encrypted)
			}
			if d, err := Check(strings.NewReader(tt.msg()), tt.opts); d != "" || err != nil {
				t.Errorf("Check = %q, %v; want \"\" (would encrypt)", d, err)
			}
			armored := outerParts(t, out.Bytes(), tt.wantOuter)
			inner, err := decrypt(armored, key("A"))
			if err != nil {
				t.Fatalf("A decrypts: %v", err)
			}
			if want := tt.wantInner(); string(inner) != want {
				t.Errorf("inner entity:\n%q\nwant:\n%q", inner, want)
			}
			// The original body, byte for byte, ends the inner entity.
			_, origBody, _ := strings.Cut(tt.msg(), "\r\n\r\n")
			if !strings.HasSuffix(string(inner), "\r\n\r\n"+origBody) {
				t.Error("inner entity does not end with the original body")
			}
			if tt.verify != nil {
				tt.verify(t, string(inner))
			}
			if _, err := decrypt(armored, key("B")); err == nil {
				t.Error("B, not a recipient, decrypted the message")
			}
		})
	}
}
