package e2e

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/caliop/relay/pgpmime"
)

// gnupg runs gpg in its own GNUPGHOME, in the C locale so that its messages
// can be matched.
type gnupg struct {
	t    *testing.T
	bin  string
	home string
}

func newGnuPG(t *testing.T, bin string) *gnupg {
	t.Helper()
	home, err := os.MkdirTemp("", "gpg") // short: the agent's socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	g := &gnupg{t: t, bin: bin, home: home}
	t.Cleanup(func() {
		// Stop the agent this GNUPGHOME started, and only that one.
		if gc, err := lookPath("gpgconf"); err == nil {
			g.cmd(gc, nil, "--kill", "gpg-agent")
		}
		os.RemoveAll(home)
	})
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return g
}

func (g *gnupg) cmd(bin string, stdin []byte, args ...string) (stdout, stderr []byte, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, bin, args...)
	c.Env = append(os.Environ(), "GNUPGHOME="+g.home, "LC_ALL=C", "LANG=C")
	c.WaitDelay = time.Second
	c.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return o.Bytes(), e.Bytes(), err
}

// gpg runs gpg in batch mode with the empty passphrase and fails the test on
// error.
func (g *gnupg) gpg(stdin []byte, args ...string) (stdout, stderr []byte) {
	g.t.Helper()
	args = append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)
	o, e, err := g.cmd(g.bin, stdin, args...)
	if err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, e)
	}
	return o, e
}

// TestPGPGnuPGDecrypts: GnuPG, the reference OpenPGP implementation, opens
// what pgpmime.Encrypt wrote to a key it generated, as an anonymous
// recipient, and finds the original entity byte for byte; a multipart/signed
// entity signed by GnuPG still verifies after the round trip.
func TestPGPGnuPGDecrypts(t *testing.T) {
	bins := requireComponents(t, "gpg")
	g := newGnuPG(t, bins["gpg"])
	g.gpg(nil, "--quick-gen-key", "U <u@example.test>", "default", "default", "never")
	pub, _ := g.gpg(nil, "--export", "u@example.test")
	keys, err := openpgp.ReadKeyRing(bytes.NewReader(pub))
	if err != nil || len(keys) != 1 {
		t.Fatalf("reading the exported key: %d keys, %v", len(keys), err)
	}

	// A multipart/signed entity whose first part GnuPG signs (RFC 3156 §5).
	signedPart := "Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Sign=C3=A9 puis chiffr=C3=A9.\r\n"
	dir := t.TempDir()
	partFile := filepath.Join(dir, "part")
	os.WriteFile(partFile, []byte(signedPart), 0o600)
	sig, _ := g.gpg(nil, "--armor", "--detach-sign", "--output", "-", partFile)
	signedBody := "--sig\r\n" + signedPart + "\r\n--sig\r\n" +
		"Content-Type: application/pgp-signature; name=\"signature.asc\"\r\n\r\n" +
		strings.ReplaceAll(string(sig), "\n", "\r\n") + "\r\n--sig--\r\n"

	tests := []struct {
		name, fields, content, body string
		hpOuter, protected          string // HP-Outer fields; content with hp="cipher"
	}{
		{
			name:    "multipart/signed",
			fields:  "From: u@example.test\r\nTo: u@example.test\r\nSubject: signed\r\n",
			hpOuter: "HP-Outer: From: u@example.test\r\nHP-Outer: To: u@example.test\r\nHP-Outer: Subject: [...]\r\n",
			content: "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n" +
				" protocol=\"application/pgp-signature\"; boundary=\"sig\"\r\n",
			protected: "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n" +
				" protocol=\"application/pgp-signature\"; boundary=\"sig\";\r\n hp=\"cipher\"\r\n",
			body: signedBody,
		},
		{
			name:    "text/plain ISO-8859-1 quoted-printable",
			fields:  "From: =?ISO-8859-1?Q?Ren=E9e?= <renee@example.test>\r\nTo: u@example.test\r\nSubject: =?ISO-8859-1?Q?R=E9union?=\r\n",
			hpOuter: "HP-Outer: From: =?ISO-8859-1?Q?Ren=E9e?= <renee@example.test>\r\nHP-Outer: To: u@example.test\r\nHP-Outer: Subject: [...]\r\n",
			content: "Content-Type: text/plain; charset=ISO-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n",
			protected: "Content-Type: text/plain; charset=ISO-8859-1;\r\n hp=\"cipher\"\r\n" +
				"Content-Transfer-Encoding: quoted-printable\r\n",
			body: "La r=E9union est d=E9plac=E9e =E0 10=A0h, salle =\r\nB=E9b=E9.\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.fields + "MIME-Version: 1.0\r\n" + tt.content + "\r\n" + tt.body
			var out bytes.Buffer
			d, err := pgpmime.Encrypt(&out, strings.NewReader(msg), keys, pgpmime.Options{HideSubject: true})
			if err != nil || d != pgpmime.Encrypted {
				t.Fatalf("Encrypt = %q, %v", d, err)
			}
			ctFile := filepath.Join(dir, "ct.asc")
			os.WriteFile(ctFile, ciphertextPart(t, out.Bytes()), 0o600)
			plain, stderr := g.gpg(nil, "--decrypt", ctFile)
			if !bytes.Contains(stderr, []byte("anonymous recipient")) {
				t.Errorf("gpg did not see a hidden recipient:\n%s", stderr)
			}

			// Protected fields, HP-Outer, then the entity with hp="cipher".
			want := tt.fields + tt.hpOuter + tt.protected + "\r\n" + tt.body
			if string(plain) != want {
				t.Errorf("gpg --decrypt:\n%q\nwant:\n%q", plain, want)
			}
			_, entityBody, _ := bytes.Cut(plain, []byte("\r\n\r\n"))
			if string(entityBody) != tt.body {
				t.Errorf("entity body changed:\n%q\nwant:\n%q", entityBody, tt.body)
			}
			if tt.name != "multipart/signed" {
				return
			}
			os.WriteFile(partFile, firstPart(t, entityBody, "sig"), 0o600)
			sigFile := filepath.Join(dir, "sig.asc")
			os.WriteFile(sigFile, sig, 0o600)
			if _, e := g.gpg(nil, "--verify", sigFile, partFile); !bytes.Contains(e, []byte("Good signature")) {
				t.Errorf("gpg --verify after the round trip:\n%s", e)
			}
		})
	}
}

// ciphertextPart returns the armored second part of a multipart/encrypted
// message (RFC 3156 §4).
func ciphertextPart(t *testing.T, msg []byte) []byte {
	t.Helper()
	m := regexp.MustCompile(`boundary="([^"]+)"`).FindSubmatch(msg)
	if m == nil {
		t.Fatalf("no boundary in\n%s", msg)
	}
	_, body, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	mr := multipart.NewReader(bytes.NewReader(body), string(m[1]))
	var parts [][]byte
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, b)
	}
	if len(parts) != 2 || string(parts[0]) != "Version: 1\r\n" {
		t.Fatalf("not RFC 3156 §4: %d parts %q", len(parts), parts)
	}
	return parts[1]
}

// firstPart returns the first body part of a multipart body, headers
// included, without the CRLF that belongs to the next delimiter (RFC 2046
// §5.1.1): the octets an RFC 3156 §5 signature covers.
func firstPart(t *testing.T, body []byte, boundary string) []byte {
	t.Helper()
	_, rest, ok := bytes.Cut(body, []byte("--"+boundary+"\r\n"))
	part, _, ok2 := bytes.Cut(rest, []byte("\r\n--"+boundary))
	if !ok || !ok2 {
		t.Fatalf("no first part in %q", body)
	}
	return part
}
