package pgppolicy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/caliop/relay/pgpmime"
)

// signedOriginal is a DKIM-signed message from origin.test, also signed
// by an ESP, as it reaches Caliop.
const signedOriginal = "DKIM-Signature: v=1; a=rsa-sha256; d=origin.test; s=old; c=simple/simple;\r\n\th=from:to:subject; bh=x; b=y\r\n" +
	"DKIM-Signature: v=1; a=rsa-sha256; d=esp.test; s=s1; h=from; bh=x; b=y\r\n" +
	"Received: from mta.origin.test by relay\r\n" +
	"From: S <s@Origin.test>\r\nTo: a@example.test\r\nSubject: hi there\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\nMessage-ID: <1@origin.test>\r\n\r\nbody\r\n"

// resigned encrypts signedOriginal to a fresh key and signs it again for
// origin.test with an RSA key; it returns the message and the DKIM TXT
// record, and the key in PEM.
func resigned(t *testing.T) (msg []byte, record string, keyPEM []byte) {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	record = "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(pub)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
	k, err := openpgp.NewEntity("A", "", "a@example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{DKIM: map[string]DKIMKey{"origin.test": {Selector: "caliop", Signer: priv}}}
	var out bytes.Buffer
	d, err := p.Encrypt(&out, messageOf(signedOriginal), []*openpgp.Entity{k})
	if d != pgpmime.Encrypted || err != nil {
		t.Fatalf("Encrypt: %s %v", d, err)
	}
	return out.Bytes(), record, keyPEM
}

// refold changes the header as relaying hops may, in ways relaxed header
// canonicalisation (RFC 6376 §3.4.2) does not see: a field folded onto a
// continuation line, runs of white space.
func refold(msg []byte) []byte {
	s := string(msg)
	s = strings.Replace(s, "\r\nTo: a@example.test\r\n", "\r\nTo:\r\n a@example.test\r\n", 1)
	s = strings.Replace(s, "\r\nSubject: hi there\r\n", "\r\nSubject:  hi   there \r\n", 1)
	return []byte(s)
}

// outerHeader is the header section of msg.
func outerHeader(msg []byte) string {
	h, _, _ := strings.Cut(string(msg), "\r\n\r\n")
	return h + "\r\n"
}

// TestResign: after encryption the message carries one signature for
// origin.test, relaxed/relaxed over From first and the other recommended
// fields present, never DKIM-Signature or Received; it verifies before
// and after re-folding; the broken original of origin.test is gone and
// the ESP's is renamed, so that no failing signature remains.
func TestResign(t *testing.T) {
	t.Parallel()
	msg, record, _ := resigned(t)
	head := outerHeader(msg)
	if n := strings.Count("\r\n"+strings.ToLower(head), "\r\ndkim-signature:"); n != 1 {
		t.Errorf("%d DKIM-Signature fields on the outer header, want 1:\n%s", n, head)
	}
	if !strings.Contains(head, "X-Original-DKIM-Signature: v=1; a=rsa-sha256; d=esp.test") || strings.Contains(head, "s=old") {
		t.Errorf("original signatures not retired as documented:\n%s", head)
	}
	lookup := func(name string) ([]string, error) {
		if name == "caliop._domainkey.origin.test" {
			return []string{record}, nil
		}
		return nil, io.EOF
	}
	for name, m := range map[string][]byte{"as sent": msg, "re-folded": refold(msg)} {
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "origin.test" {
			t.Errorf("%s: verifications %+v, %v; want one pass for origin.test", name, vs, err)
			continue
		}
		fields := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":"))
		if !strings.HasPrefix(fields, "from:") || strings.Contains(fields, "dkim-signature") || strings.Contains(fields, "received") || !strings.Contains(fields, "content-type") {
			t.Errorf("signed fields %q", fields)
		}
	}
	sig := head[strings.Index(strings.ToLower(head), "dkim-signature:"):]
	if !strings.Contains(sig, "c=relaxed/relaxed") {
		t.Errorf("new signature is not relaxed/relaxed: %s", sig)
	}
}

// TestResignEncryptDKIMSignedWithoutKey: encrypting a signed message
// without a key to sign again leaves no signature to fail: every
// original is renamed.
func TestResignEncryptDKIMSignedWithoutKey(t *testing.T) {
	t.Parallel()
	k, err := openpgp.NewEntity("A", "", "a@example.test", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p := &Policy{EncryptDKIMSigned: true}
	if d, err := p.Encrypt(&out, messageOf(signedOriginal), []*openpgp.Entity{k}); d != pgpmime.Encrypted || err != nil {
		t.Fatalf("Encrypt: %s %v", d, err)
	}
	head := outerHeader(out.Bytes())
	if strings.Contains("\r\n"+strings.ToLower(head), "\r\ndkim-signature:") || strings.Count(head, "X-Original-DKIM-Signature:") != 2 {
		t.Errorf("outer header:\n%s", head)
	}
}

// TestResignVerifiedByOthers: dkimpy (python3-dkim) and OpenDKIM verify
// the re-signed message, as sent and re-folded. Skipped where they are
// missing, unless CALIOP_E2E is set.
func TestResignVerifiedByOthers(t *testing.T) {
	t.Parallel()
	python, errPy := exec.LookPath("/usr/bin/python3")
	opendkim, errOD := exec.LookPath("opendkim")
	if errPy == nil && exec.Command(python, "-c", "import dkim").Run() != nil {
		errPy = exec.ErrNotFound
	}
	if errPy != nil || errOD != nil {
		if os.Getenv("CALIOP_E2E") != "" {
			t.Fatalf("dkimpy (%v) or opendkim (%v) missing (CALIOP_E2E=1)", errPy, errOD)
		}
		t.Skip("dkimpy or opendkim not installed")
	}
	msg, record, _ := resigned(t)
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("caliop._domainkey.origin.test "+record+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "opendkim.conf")
	if err := os.WriteFile(conf, []byte("TestPublicKeys "+keys+"\nMode v\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const verify = `import dkim, sys
rec = sys.argv[1].encode()
ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: rec if name == b"caliop._domainkey.origin.test." else None)
print("pass" if ok else "fail")`
	for name, m := range map[string][]byte{"as sent": msg, "re-folded": refold(msg)} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, python, "-c", verify, record)
		cmd.Stdin = bytes.NewReader(m)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "pass" {
			t.Errorf("dkimpy, %s: %v %s", name, err, out)
		}
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".eml")
		if err := os.WriteFile(file, m, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err = exec.CommandContext(ctx, opendkim, "-x", conf, "-t", file, "-vv").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "verification (s=caliop, d=origin.test") || !strings.Contains(string(out), "succeeded") {
			t.Errorf("opendkim, %s: %v %s", name, err, out)
		}
		cancel()
	}
}
