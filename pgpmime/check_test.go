package pgpmime

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

const armorBlock = "-----BEGIN PGP MESSAGE-----\r\n\r\nhF4DAAAAAAAAAAASAQdA\r\n=abcd\r\n-----END PGP MESSAGE-----\r\n"

// mixed wraps parts in a multipart/mixed message with extra header fields.
func mixed(fields string, parts ...string) string {
	var b strings.Builder
	b.WriteString("From: a@example.test\r\nTo: b@example.test\r\n" + fields +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--b1\r\n" + p + "\r\n")
	}
	b.WriteString("--b1--\r\n")
	return b.String()
}

// TestLeaveAlone: rows read like the issue. A left-alone message must pass
// through Encrypt byte for byte, with the decision Check announced.
func TestLeaveAlone(t *testing.T) {
	t.Parallel()
	b64Armor := base64.StdEncoding.EncodeToString([]byte("Hi,\r\n" + armorBlock))
	tests := []struct {
		name string
		msg  string
		opts Options
		want Decision // "" = encrypted
	}{
		{"multipart/encrypted (RFC 3156 §4)",
			"From: a@example.test\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--x--\r\n",
			Options{}, AlreadyEncrypted},
		{"media type is case-insensitive (RFC 2045 §5.1)",
			"From: a@example.test\r\nContent-Type: Multipart/Encrypted; boundary=x\r\n\r\n--x--\r\n",
			Options{}, AlreadyEncrypted},
		{"S/MIME application/pkcs7-mime (RFC 8551 §3.2)",
			"From: a@example.test\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n",
			Options{}, AlreadyEncrypted},
		{"old S/MIME application/x-pkcs7-mime",
			"From: a@example.test\r\nContent-Type: application/x-pkcs7-mime; name=smime.p7m\r\n\r\nMIAGCSqGSIb3DQEHA6CAMIACAQAx\r\n",
			Options{}, AlreadyEncrypted},
		{"inline PGP in a plain body",
			"From: a@example.test\r\n\r\n" + armorBlock,
			Options{}, AlreadyEncrypted},
		{"inline PGP in a quoted-printable text part, soft break inside the marker",
			mixed("", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nSalut =C3=A0 toi,\r\n-----BEGIN PGP =\r\nMESSAGE-----\r\n\r\nhF4DAAAAAAAAAAASAQdA\r\n-----END PGP MESSAGE-----\r\n"),
			Options{}, AlreadyEncrypted},
		{"inline PGP in a base64 text/html part inside multipart/alternative",
			mixed("", "Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b2\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
				b64Armor[:40]+"\r\n"+b64Armor[40:]+"\r\n--b2--\r\n"),
			Options{}, AlreadyEncrypted},
		{"Autocrypt Setup Message (Autocrypt Level 1 §4.4)",
			mixed("Autocrypt-Setup-Message: v1\r\n", "Content-Type: text/plain\r\n\r\nThis message contains all information to transfer your Autocrypt settings.\r\n",
				"Content-Type: application/autocrypt-setup\r\nContent-Disposition: attachment; filename=\"autocrypt-setup-message.html\"\r\n\r\n<pre>\r\n"+armorBlock+"</pre>\r\n"),
			Options{}, AutocryptSetup},
		{"mailing list with SkipLists (RFC 2919)",
			mixed("List-Id: Caliop users <users.caliop.example.test>\r\n", "Content-Type: text/plain\r\n\r\nhello list\r\n"),
			Options{SkipLists: true}, MailingList},

		// Rows that must be encrypted: near misses.
		{"mailing list without SkipLists",
			mixed("List-Id: <users.caliop.example.test>\r\n", "Content-Type: text/plain\r\n\r\nhello list\r\n"),
			Options{}, ""},
		{"armor quoted in a reply is not at the start of a line",
			"From: a@example.test\r\n\r\nYou wrote:\r\n> -----BEGIN PGP MESSAGE-----\r\n> hF4D\r\n",
			Options{}, ""},
		{"clear-signed inline PGP is not encrypted",
			"From: a@example.test\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nhello\r\n",
			Options{}, ""},
		{"armor in a non-text attachment",
			mixed("", "Content-Type: text/plain\r\n\r\nfile attached\r\n", "Content-Type: application/octet-stream; name=m.asc\r\n\r\n"+armorBlock),
			Options{}, ""},
		{"armor in a forwarded message/rfc822 is not searched",
			mixed("", "Content-Type: message/rfc822\r\n\r\nFrom: x@example.test\r\n\r\n"+armorBlock),
			Options{}, ""},
		{"multipart/signed",
			signedMessage(),
			Options{SkipLists: true}, ""},
		{"malformed multipart body is encrypted as it stands",
			"From: a@example.test\r\nContent-Type: multipart/mixed; boundary=nope\r\n\r\n" + armorBlock,
			Options{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := Check(strings.NewReader(tt.msg), tt.opts)
			if err != nil || d != tt.want {
				t.Fatalf("Check = %q, %v; want %q", d, err, tt.want)
			}
			var out bytes.Buffer
			d, err = Encrypt(&out, strings.NewReader(tt.msg), []*openpgp.Entity{key("A")}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if d != Encrypted || !strings.Contains(out.String(), "multipart/encrypted") {
					t.Errorf("Encrypt = %q, want %q", d, Encrypted)
				}
				return
			}
			if d != tt.want {
				t.Errorf("Encrypt = %q, want %q", d, tt.want)
			}
			if out.String() != tt.msg {
				t.Errorf("left-alone message changed:\n%q\nwant:\n%q", out.String(), tt.msg)
			}
		})
	}
}

// TestArmorAcrossChunks: an armor line is found wherever it falls
// against containsArmor's chunks, and a line that only looks like one
// (not at a line start) is not.
func TestArmorAcrossChunks(t *testing.T) {
	t.Parallel()
	for _, at := range []int{0, 1, armorChunk - 40, armorChunk - 20, armorChunk - 2, armorChunk, armorChunk + 7, 3*armorChunk - 10} {
		filler := strings.Repeat("x", at)
		if !containsArmor(strings.NewReader(filler + "\r\n" + armorBlock)) {
			t.Errorf("armor after %d bytes not found", at)
		}
		if containsArmor(strings.NewReader(filler + "> " + armorBlock)) {
			t.Errorf("quoted armor after %d bytes taken for armor", at)
		}
	}
}
