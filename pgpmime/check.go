package pgpmime

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/caliop/relay/message"
)

// Decision says what was done to a message, for the trace header (e.g.
// "X-Caliop-PGP: encrypted").
type Decision string

const (
	// Encrypted: the message was encrypted (or, from Check, would be).
	Encrypted Decision = "encrypted"
	// AlreadyEncrypted: multipart/encrypted, application/(x-)pkcs7-mime, or a
	// text part holding inline PGP; encrypting again would help no one.
	AlreadyEncrypted Decision = "already-encrypted"
	// AutocryptSetup: an Autocrypt Setup Message (Autocrypt Level 1 §4.4),
	// which its own client must be able to read as it is.
	AutocryptSetup Decision = "autocrypt-setup"
	// MailingList: a List-Id field (RFC 2919) with Options.SkipLists.
	MailingList Decision = "mailing-list"
	// NoKey: no usable key for the recipients (the policy's decision).
	NoKey Decision = "no-key"
	// DKIM: DKIM-signed, and encryption would break the signature (the
	// policy's decision).
	DKIM Decision = "dkim"
)

// Decisions lists every decision, the vocabulary of the trace header and
// of caliop_pgp_messages_total.
var Decisions = []Decision{Encrypted, NoKey, AlreadyEncrypted, AutocryptSetup, MailingList, DKIM}

// Options tune Check and Encrypt. The zero value is usable.
type Options struct {
	// HideSubject replaces each outer Subject with "[...]" (RFC 9788 §3,
	// hcp_baseline); the real one stays inside the ciphertext.
	HideSubject bool
	// SkipLists leaves mailing-list mail (with a List-Id field) alone.
	SkipLists bool
	// Now is the time keys are checked against; nil: time.Now.
	Now func() time.Time
	// Rand supplies the boundary and all randomness of the encryption; nil:
	// crypto/rand.
	Rand io.Reader
}

var (
	// ErrMalformed: the message cannot be read as RFC 5322 (a header line
	// without a field name); it can be neither checked nor encrypted.
	ErrMalformed = message.ErrMalformedHeader
	// ErrNoKeys: Encrypt was given no key (or a nil one) for a message it
	// would encrypt; call it only when every recipient has a key.
	ErrNoKeys = errors.New("pgpmime: no recipient key")
	// ErrEncrypt: OpenPGP encryption failed, usually because a key has no
	// usable encryption subkey (expired, revoked); drop or refresh that key.
	ErrEncrypt = errors.New("pgpmime: encryption failed")
)

// Check says whether msg (a whole RFC 5322 message, CRLF line endings) would
// be left alone and why ("" = would be encrypted). It reads only what it
// needs: the header section, then the body only to look for inline PGP.
func Check(msg io.Reader, opts Options) (Decision, error) {
	br := bufio.NewReader(msg)
	h, err := message.ReadHeader(br)
	if err != nil {
		return "", err
	}
	return decide(h, br, opts), nil
}

// decide is the whole policy, in order: Autocrypt Setup Message, encrypted
// structure at the top, mailing list, inline PGP in a text part (the only
// test that reads the body).
func decide(h message.Header, body io.Reader, opts Options) Decision {
	if _, ok := h.Get("Autocrypt-Setup-Message"); ok {
		return AutocryptSetup
	}
	ctValue, ctPresent := h.Get("Content-Type")
	ct := parseContentType(ctValue, ctPresent)
	switch ct.typ {
	case "multipart/encrypted", // RFC 1847 §2.2, RFC 3156 §4
		"application/pkcs7-mime", "application/x-pkcs7-mime": // RFC 8551 §3.2
		return AlreadyEncrypted
	}
	if _, ok := h.Get("List-Id"); ok && opts.SkipLists {
		return MailingList
	}
	cte, _ := h.Get("Content-Transfer-Encoding")
	if inlinePGP(ct, cte, body, 0) {
		return AlreadyEncrypted
	}
	return ""
}

// maxDepth bounds the nesting of multiparts walked for inline PGP; deeper
// parts are not searched (the message is then encrypted, which is harmless).
const maxDepth = 20

// inlinePGP reports whether a text/* part at or below this entity holds an
// armored PGP message: a line starting "-----BEGIN PGP MESSAGE-----" (RFC 9580
// §6.2) in its decoded content. Parts that cannot be parsed are not searched.
func inlinePGP(ct mediaType, cte string, body io.Reader, depth int) bool {
	switch {
	case strings.HasPrefix(ct.typ, "text/"):
		return containsArmor(decode(cte, body))
	case strings.HasPrefix(ct.typ, "multipart/"):
		boundary := ct.params["boundary"]
		if boundary == "" || depth >= maxDepth {
			return false
		}
		mr := multipart.NewReader(body, boundary)
		for {
			p, err := mr.NextRawPart() // raw: the encoding is ours to undo
			if err != nil {
				return false
			}
			v := p.Header.Get("Content-Type")
			var sub mediaType
			if v == "" && ct.typ == "multipart/digest" {
				sub = mediaType{typ: "message/rfc822"} // RFC 2046 §5.1.5
			} else {
				sub = parseContentType(v, v != "")
			}
			if inlinePGP(sub, p.Header.Get("Content-Transfer-Encoding"), p, depth+1) {
				return true
			}
		}
	}
	return false
}

// decode undoes a Content-Transfer-Encoding (RFC 2045 §6) for searching.
func decode(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, base64Only{r})
	}
	return r
}

// base64Only drops the line breaks and other characters outside the base64
// alphabet, which decoders must ignore (RFC 2045 §6.8).
type base64Only struct{ r io.Reader }

func (b base64Only) Read(p []byte) (int, error) {
	for {
		n, err := b.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// armorLine is an armor header line preceded by the line break that puts it
// at the start of a line; containsArmor supplies one before the first line.
var armorLine = []byte("\n-----BEGIN PGP MESSAGE-----")

// armorChunk is how much of a part containsArmor reads at once: a page,
// as most text parts are smaller.
const armorChunk = 4096

// containsArmor reads r until it finds armorLine, keeping only a chunk and an
// overlap in memory. Read errors end the search.
func containsArmor(r io.Reader) bool {
	buf := make([]byte, armorChunk)
	carry := copy(buf, "\n")
	for {
		n, err := r.Read(buf[carry:])
		n += carry
		if bytes.Contains(buf[:n], armorLine) {
			return true
		}
		if err != nil {
			return false
		}
		if keep := len(armorLine) - 1; n > keep {
			carry = copy(buf, buf[n-keep:n])
		} else {
			carry = n
		}
	}
}
