package pgpmime

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// obscuredSubject is the outer Subject RFC 9788 §3 (hcp_baseline) gives an
// encrypted message.
const obscuredSubject = "[...]"

// Encrypt writes to w the message encrypted to keys: the outer header (all
// original header fields except Content-* and MIME-Version, which describe
// the new structure; with Subject replaced when HideSubject) + MIME-Version +
// Content-Type multipart/encrypted; protocol="application/pgp-encrypted";
// boundary=… (RFC 3156 §4); then the two parts, "Version: 1" and the
// ASCII-armored ciphertext, encrypted to every key with wildcard key IDs
// (RFC 9580 §5.1: no recipient learns the others' keys) and not signed. The
// plaintext inside is the original header fields (header protection, RFC 9788
// §2) + the original Content-* header fields + the original body entity byte
// for byte (see the package documentation). Output lines end in CRLF and are
// at most 998 octets (RFC 5322 §2.1.1) when the input's are.
//
// It returns the Decision: Encrypted, or one of the leave-alone decisions
// (then w gets msg unchanged, byte for byte). On error nothing is written.
//
// Encrypt uses keys only to copy them, under a lock all Encrypt calls share:
// concurrent calls may pass the same entities, but no other code may use them
// meanwhile (go-crypto entities are not safe for concurrent use, even to read).
func Encrypt(w io.Writer, msg io.Reader, keys []*openpgp.Entity, opts Options) (Decision, error) {
	data, err := io.ReadAll(msg)
	if err != nil {
		return "", err
	}
	h, err := readHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return "", err
	}
	body := data[h.size:]
	if d := decide(h, bytes.NewReader(body), opts); d != "" {
		_, err := w.Write(data)
		return d, err
	}
	if len(keys) == 0 {
		return "", ErrNoKeys
	}
	recipients := make([]*openpgp.Entity, len(keys))
	for i, k := range keys {
		if k == nil {
			return "", fmt.Errorf("%w: keys[%d] is nil", ErrNoKeys, i)
		}
		if recipients[i], err = publicCopy(k); err != nil {
			return "", fmt.Errorf("%w: keys[%d]: %w", ErrEncrypt, i, err)
		}
	}
	random := opts.Rand
	if random == nil {
		random = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("%w: boundary: %w", ErrEncrypt, err)
	}
	boundary := "caliop-pgp-" + hex.EncodeToString(b[:])

	var armored bytes.Buffer
	config := &packet.Config{Rand: random, Time: opts.Now}
	if err := seal(&armored, payload(h, body, opts), recipients, config); err != nil {
		return "", err
	}

	if _, err := w.Write(assemble(h, opts, boundary, armored.Bytes())); err != nil {
		return "", err
	}
	return Encrypted, nil
}

// assemble writes the outer message: the outer header fields, then the
// multipart/encrypted structure of RFC 3156 §4 around the armored ciphertext.
func assemble(h header, opts Options, boundary string, armored []byte) []byte {
	var out bytes.Buffer
	out.Grow(h.size + len(armored) + 512)
	for _, f := range outerFields(h, opts) {
		out.Write(f)
	}
	fmt.Fprintf(&out, "MIME-Version: 1.0\r\n"+
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n"+
		" boundary=\"%s\"\r\n"+
		"\r\n"+
		"--%[1]s\r\n"+
		"Content-Type: application/pgp-encrypted\r\n"+
		"\r\n"+
		"Version: 1\r\n"+
		"\r\n"+
		"--%[1]s\r\n"+
		"Content-Type: application/octet-stream\r\n"+
		"\r\n", boundary)
	out.Write(armored)
	if !bytes.HasSuffix(armored, []byte("\r\n")) {
		out.WriteString("\r\n") // go-crypto ends the armor without one
	}
	fmt.Fprintf(&out, "\r\n--%s--\r\n", boundary) // RFC 2046 §5.1.1: the CRLF is the delimiter's
	return out.Bytes()
}

// outerFields returns the outer header fields: the original ones minus the
// structural ones, with Subject obscured when HideSubject is set.
func outerFields(h header, opts Options) [][]byte {
	var out [][]byte
	for _, f := range h.fields {
		switch {
		case f.structural():
		case opts.HideSubject && f.is("Subject"):
			out = append(out, []byte("Subject: "+obscuredSubject+"\r\n"))
		default:
			out = append(out, f.raw)
		}
	}
	return out
}

// payload returns the Cryptographic Payload (RFC 9788's term): the protected
// header fields, one HP-Outer per outer field (RFC 9788 §2.2), the original
// Content-* fields (Content-Type with hp="cipher", §2.1.1) and the body.
func payload(h header, body []byte, opts Options) []byte {
	var p bytes.Buffer
	p.Grow(len(body) + 2*h.size)
	for _, f := range h.fields {
		if !f.structural() {
			p.Write(f.raw)
		}
	}
	for _, f := range outerFields(h, opts) {
		p.WriteString("HP-Outer: ")
		p.Write(f)
	}
	var ct *field
	for i, f := range h.fields {
		if f.is("Content-Type") && ct == nil {
			ct = &h.fields[i]
			p.Write(protectContentType(ct))
		} else if f.structural() && !f.is("MIME-Version") {
			p.Write(f.raw)
		}
	}
	if ct == nil {
		p.Write(protectContentType(nil))
	}
	p.WriteString("\r\n")
	p.Write(body)
	return p.Bytes()
}

// copyMu serializes the only use Encrypt makes of a caller's Entity: copying
// it. go-crypto writes into an Entity as it reads it (cached signature checks,
// even Serialize), so two goroutines may not use one at once.
var copyMu sync.Mutex

// publicCopy returns a private copy of a key's public parts, which this call
// alone then uses; callers may thus share entities between Encrypt calls.
func publicCopy(k *openpgp.Entity) (*openpgp.Entity, error) {
	var b bytes.Buffer
	copyMu.Lock()
	err := k.Serialize(&b)
	copyMu.Unlock()
	if err != nil {
		return nil, err
	}
	el, err := openpgp.ReadKeyRing(&b)
	if err != nil {
		return nil, err
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("%d keys in one entity", len(el))
	}
	return el[0], nil
}

// seal encrypts plaintext to keys, all hidden (wildcard key IDs, RFC 9580
// §5.1), unsigned, and writes it ASCII-armored (RFC 9580 §6.2) with CRLF line
// endings.
func seal(w io.Writer, plaintext []byte, keys []*openpgp.Entity, config *packet.Config) error {
	crlf := &crlfWriter{w: w}
	aw, err := armor.Encode(crlf, "PGP MESSAGE", nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	pw, err := openpgp.Encrypt(aw, nil, keys, nil, nil, config)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if _, err := pw.Write(plaintext); err != nil {
		return fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	return nil
}

// crlfWriter turns the armor encoder's LF line endings into CRLF (RFC 5322
// §2.1: lines end in CRLF). Its input holds no CR.
type crlfWriter struct{ w io.Writer }

func (c *crlfWriter) Write(p []byte) (int, error) {
	_, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
	if err != nil {
		return 0, err
	}
	return len(p), nil
}
