package pgpmime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// crlf writes a fixture readably: lines joined with CRLF.
func crlf(lines ...string) string { return strings.Join(lines, "\r\n") }

// testKeys are generated once per test binary: A and C receive, B does not,
// S signs. They are kept serialized: an Entity caches signature checks as it
// is used and may not be shared between goroutines, so each use parses its
// own.
var testKeys = sync.OnceValue(func() map[string][]byte {
	keys := map[string][]byte{}
	for _, n := range []string{"A", "B", "C", "S"} {
		e, err := openpgp.NewEntity(n, "", strings.ToLower(n)+"@example.test",
			&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
		if err != nil {
			panic(err)
		}
		var b bytes.Buffer
		if err := e.SerializePrivateWithoutSigning(&b, nil); err != nil {
			panic(err)
		}
		keys[n] = b.Bytes()
	}
	return keys
})

// key returns a fresh copy of a test key, private parts included.
func key(name string) *openpgp.Entity {
	el, err := openpgp.ReadKeyRing(bytes.NewReader(testKeys()[name]))
	if err != nil || len(el) != 1 {
		panic(fmt.Sprint(name, len(el), err))
	}
	return el[0]
}

// splitMessage returns a message's header section (without the empty line)
// and body.
func splitMessage(t *testing.T, msg []byte) (string, []byte) {
	t.Helper()
	h, b, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no empty line in %q", msg)
	}
	return string(h) + "\r\n", b
}

var armorRE = regexp.MustCompile(`^-----BEGIN PGP MESSAGE-----\r\n\r\n([A-Za-z0-9+/=]{1,76}\r\n)+(=[A-Za-z0-9+/]{4}\r\n)?-----END PGP MESSAGE-----\r\n$`)

// outerParts checks that out is exactly the RFC 3156 §4 structure below
// wantHeader (the outer fields Encrypt kept) and returns the armored
// ciphertext.
func outerParts(t *testing.T, out []byte, wantHeader string) []byte {
	t.Helper()
	for i, line := range bytes.SplitAfter(out, []byte("\n")) {
		if len(line) > 0 && !bytes.HasSuffix(line, []byte("\r\n")) || bytes.Count(line, []byte("\r")) > 1 {
			t.Errorf("line %d not CRLF-terminated: %q", i+1, line)
		}
		if len(line) > 1000 {
			t.Errorf("line %d is %d octets, over 998 (RFC 5322 §2.1.1)", i+1, len(line)-2)
		}
	}
	header, body := splitMessage(t, out)
	m := regexp.MustCompile(`boundary="(caliop-pgp-[0-9a-f]{32})"`).FindStringSubmatch(header)
	if m == nil {
		t.Fatalf("no boundary in outer header:\n%s", header)
	}
	b := m[1]
	want := wantHeader +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n" +
		" boundary=\"" + b + "\"\r\n"
	if header != want {
		t.Errorf("outer header:\n%s\nwant:\n%s", header, want)
	}
	typ, params, err := mime.ParseMediaType(strings.Join(strings.Fields(
		header[strings.Index(header, "Content-Type:")+len("Content-Type:"):]), " "))
	if err != nil || typ != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Errorf("Content-Type = %q %v %v", typ, params, err)
	}

	// Exactly two parts (RFC 3156 §4), read by a MIME parser.
	mr := multipart.NewReader(bytes.NewReader(body), b)
	var parts [][2]string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pb, _ := io.ReadAll(p)
		parts = append(parts, [2]string{p.Header.Get("Content-Type"), string(pb)})
		if len(p.Header) != 1 {
			t.Errorf("part %d header = %v, want Content-Type only", len(parts), p.Header)
		}
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	if parts[0] != [2]string{"application/pgp-encrypted", "Version: 1\r\n"} {
		t.Errorf("first part = %q, want application/pgp-encrypted with \"Version: 1\"", parts[0])
	}
	if parts[1][0] != "application/octet-stream" || !armorRE.MatchString(parts[1][1]) {
		t.Errorf("second part = %q, want armored application/octet-stream", parts[1])
	}
	// And byte for byte, nothing but the two parts.
	wantBody := "--" + b + "\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n" +
		"--" + b + "\r\nContent-Type: application/octet-stream\r\n\r\n" + parts[1][1] +
		"\r\n--" + b + "--\r\n"
	if string(body) != wantBody {
		t.Errorf("outer body:\n%q\nwant:\n%q", body, wantBody)
	}
	return []byte(parts[1][1])
}

// decrypt opens the armored ciphertext with one private key and returns the
// plaintext, or an error.
func decrypt(armored []byte, k *openpgp.Entity) ([]byte, error) {
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		return nil, err
	}
	md, err := openpgp.ReadMessage(block.Body, openpgp.EntityList{k}, nil, nil)
	if err != nil {
		return nil, err
	}
	if md.IsSigned {
		return nil, errors.New("the ciphertext is signed; Encrypt must not sign")
	}
	return io.ReadAll(md.UnverifiedBody)
}
