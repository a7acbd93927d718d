package pgpmime

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/caliop/relay/message"
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
// (then w gets msg unchanged, byte for byte). On an error found before
// the encryption starts (a malformed header, a key that cannot encrypt)
// nothing is written; an I/O error later leaves w partial: discard it.
//
// Encrypt reads keys under locks all Encrypt calls share (lockKeys):
// concurrent calls may pass the same entities, but no other code may use them
// meanwhile (go-crypto entities are not safe for concurrent use, even to read:
// go-crypto keeps its signature checks in them, so a key's self-signatures
// are checked at its first message, not at every one).
//
// Encrypt holds msg in memory; EncryptMessage streams a message that can
// be read twice (a spool).
func Encrypt(w io.Writer, msg io.Reader, keys []*openpgp.Entity, opts Options) (Decision, error) {
	data, err := io.ReadAll(msg)
	if err != nil {
		return "", err
	}
	h, err := message.ReadHeader(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return "", err
	}
	return EncryptMessage(w, Message{Header: h, Open: func() io.Reader { return bytes.NewReader(data) }}, keys, opts)
}

// Message is a message to encrypt: its header section, parsed once, and
// Open, which reads the whole message from its start, each time anew.
type Message struct {
	Header message.Header
	Open   func() io.Reader
}

// body reads the message after its header section.
func (m Message) body() io.Reader {
	r := m.Open()
	if s, ok := r.(io.Seeker); ok {
		if _, err := s.Seek(int64(m.Header.Size), io.SeekStart); err == nil {
			return r
		}
	}
	io.CopyN(io.Discard, r, int64(m.Header.Size))
	return r
}

// EncryptMessage is Encrypt on m, streamed: the body is read once to
// decide (inline PGP) and once to encrypt, never held in memory.
func EncryptMessage(w io.Writer, m Message, keys []*openpgp.Entity, opts Options) (Decision, error) {
	if m.Header.Err != nil {
		return "", m.Header.Err
	}
	if d := decide(m.Header, m.body(), opts); d != "" {
		_, err := io.Copy(w, m.Open())
		return d, err
	}
	if err := checkKeys(keys); err != nil {
		return "", err
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
	// The armor and the key packets are held until the encryption
	// started, so that a key that cannot encrypt leaves w untouched.
	held := &heldWriter{}
	crlf := &crlfWriter{w: held}
	aw, err := armor.Encode(crlf, "PGP MESSAGE", nil)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	unlock := lockKeys(keys)
	pw, err := openpgp.Encrypt(aw, nil, keys, nil, nil, &packet.Config{Rand: random, Time: opts.Now})
	unlock()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if _, err := w.Write(outer(m.Header, opts, boundary)); err != nil {
		return "", err
	}
	if err := held.release(w); err != nil {
		return "", err
	}
	if _, err := pw.Write(payloadHeader(m.Header, opts)); err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if _, err := io.Copy(pw, m.body()); err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if err := pw.Close(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	if err := aw.Close(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrEncrypt, err)
	}
	end := "\r\n--" + boundary + "--\r\n" // RFC 2046 §5.1.1: the CRLF is the delimiter's
	if !crlf.eol {
		end = "\r\n" + end // go-crypto ends the armor without one
	}
	_, err = io.WriteString(w, end)
	return Encrypted, err
}

// outer is the outer header and the multipart/encrypted structure of
// RFC 3156 §4 up to the armored ciphertext.
func outer(h message.Header, opts Options, boundary string) []byte {
	var out bytes.Buffer
	out.Grow(h.Size + 512)
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
	return out.Bytes()
}

// heldWriter keeps what is written until release, then writes through.
type heldWriter struct {
	buf bytes.Buffer
	w   io.Writer
}

func (h *heldWriter) Write(p []byte) (int, error) {
	if h.w != nil {
		return h.w.Write(p)
	}
	return h.buf.Write(p)
}

// release writes what was held to w, and later writes straight to it.
func (h *heldWriter) release(w io.Writer) error {
	h.w = w
	_, err := w.Write(h.buf.Bytes())
	return err
}

// outerFields returns the outer header fields: the original ones minus the
// structural ones, with Subject obscured when HideSubject is set.
func outerFields(h message.Header, opts Options) [][]byte {
	var out [][]byte
	for _, f := range h.Fields {
		switch {
		case structural(f):
		case opts.HideSubject && f.Is("Subject"):
			out = append(out, []byte("Subject: "+obscuredSubject+"\r\n"))
		default:
			out = append(out, f.Raw)
		}
	}
	return out
}

// payloadHeader is the header of the Cryptographic Payload (RFC 9788's
// term), which the original body follows: the protected header fields,
// one HP-Outer per outer field (RFC 9788 §2.2), the original Content-*
// fields (Content-Type with hp="cipher", §2.1.1) and the empty line.
func payloadHeader(h message.Header, opts Options) []byte {
	var p bytes.Buffer
	p.Grow(2 * h.Size)
	for _, f := range h.Fields {
		if !structural(f) {
			p.Write(f.Raw)
		}
	}
	for _, f := range outerFields(h, opts) {
		p.WriteString("HP-Outer: ")
		p.Write(f)
	}
	var ct *message.Field
	for i, f := range h.Fields {
		if f.Is("Content-Type") && ct == nil {
			ct = &h.Fields[i]
			p.Write(protectContentType(ct))
		} else if structural(f) && !f.Is("MIME-Version") {
			p.Write(f.Raw)
		}
	}
	if ct == nil {
		p.Write(protectContentType(nil))
	}
	p.WriteString("\r\n")
	return p.Bytes()
}

// crlfWriter turns the armor encoder's LF line endings into CRLF (RFC 5322
// §2.1: lines end in CRLF), and notes whether the last line ended. Its
// input holds no CR.
type crlfWriter struct {
	w   io.Writer
	eol bool // the last byte written ended a line
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	_, err := c.w.Write(bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n")))
	if err != nil {
		return 0, err
	}
	c.eol = p[len(p)-1] == '\n'
	return len(p), nil
}
