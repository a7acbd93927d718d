// Package pgppolicy decides, per recipient, whether a message is
// PGP/MIME-encrypted to a key found through WKD, and does it. It sits
// between the relay and the leaf packages wkdcache (keys) and pgpmime
// (the encryption): opportunistic by default, no key means no change.
package pgppolicy

import (
	"bytes"
	"cmp"
	"context"
	"crypto"
	"io"
	"net/mail"
	"strings"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/message"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/wkd/wkdcache"
)

// Mode is what applies to a destination.
type Mode string

// The modes.
const (
	Off           Mode = "off"
	Opportunistic Mode = "opportunistic"
	Required      Mode = "required"
)

// The policy's own decisions; pgpmime owns the vocabulary.
const (
	NoKey = pgpmime.NoKey
	DKIM  = pgpmime.DKIM // DKIM-signed: encryption would break the signature
)

// TraceHeader is the field that records the decision in each message.
const TraceHeader = "X-Caliop-PGP"

// Keys finds keys; *wkdcache.Cache is one.
type Keys interface {
	Get(ctx context.Context, address string) wkdcache.Result
}

// Policy is the operator's choice. Its fields are set once and read
// concurrently.
type Policy struct {
	Keys         Keys
	Default      Mode
	Destinations map[string]Mode // lowercase address or domain → mode
	// Permanent refuses a recipient without key under Required with 5xx
	// instead of 4xx.
	Permanent         bool
	EncryptDKIMSigned bool
	// DKIM holds signing keys by From domain: a DKIM-signed message from
	// such a domain is encrypted and signed again (RFC 6376), since
	// encryption breaks the original signature.
	DKIM    map[string]DKIMKey
	Options pgpmime.Options
}

// DKIMKey is a DKIM signing key and its selector.
type DKIMKey struct {
	Selector string
	Signer   crypto.Signer
}

// ModeFor is the mode for a recipient: its address, else its domain,
// else the default.
func (p *Policy) ModeFor(addr string) Mode {
	a := strings.ToLower(addr)
	if m, ok := p.Destinations[a]; ok {
		return m
	}
	domain := a[strings.LastIndexByte(a, '@')+1:]
	if m, ok := p.Destinations[domain]; ok {
		return m
	}
	return p.Default
}

// Decide is called at RCPT: the key to encrypt to (nil: plaintext) and,
// under Required without a usable key, the reply refusing the recipient.
// The cache answers first; otherwise a WKD lookup (at most 5 seconds).
func (p *Policy) Decide(ctx context.Context, addr string) (*openpgp.Entity, *smtp.SMTPError) {
	mode := p.ModeFor(addr)
	if mode == Off {
		return nil, nil
	}
	r := p.Keys.Get(ctx, addr)
	if (r.State == wkdcache.StateKey || r.State == wkdcache.StateChanged) && r.Key != nil {
		// StateChanged: the pinned key, still valid; the new one is
		// refused (pgp.accept_key_change) and mail stays encrypted.
		return r.Key, nil
	}
	if mode != Required {
		return nil, nil
	}
	if p.Permanent && r.State != wkdcache.StateUnknown {
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "encryption required for " + addr + " but no usable OpenPGP key (" + string(r.State) + ")"}
	}
	return nil, &smtp.SMTPError{Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "encryption required for " + addr + " but no usable OpenPGP key yet (" + string(r.State) + ")"}
}

// Encrypt writes the message to w encrypted to keys, or unchanged when it
// must be left alone, and returns the decision; the message is streamed
// (pgpmime.EncryptMessage), except a DKIM-signed one, which is signed
// again in memory. A DKIM-signed message is left alone unless
// EncryptDKIMSigned: encryption would break its signature (the signer
// belongs after Caliop, see README).
func (p *Policy) Encrypt(w io.Writer, m pgpmime.Message, keys []*openpgp.Entity) (pgpmime.Decision, error) {
	if len(m.Header.Values("DKIM-Signature")) == 0 {
		return pgpmime.EncryptMessage(w, m, keys, p.Options)
	}
	domain := fromDomain(m.Header)
	key, canSign := p.DKIM[domain]
	if !canSign && !p.EncryptDKIMSigned {
		_, err := io.Copy(w, m.Open())
		return DKIM, err
	}
	var buf bytes.Buffer
	d, err := pgpmime.EncryptMessage(&buf, m, keys, p.Options)
	if err != nil || d != pgpmime.Encrypted {
		_, cerr := io.Copy(w, &buf)
		return d, cmp.Or(err, cerr)
	}
	if canSign {
		return d, resign(w, buf.Bytes(), domain, key)
	}
	// No key to sign again: the signatures encryption broke are renamed,
	// not left to fail.
	_, err = w.Write(retireSignatures(buf.Bytes(), ""))
	return d, err
}

// fromDomain is the lowercase domain of the From address, "" if none.
func fromDomain(h message.Header) string {
	from, _ := h.Get("From")
	a, err := mail.ParseAddress(from)
	if err != nil {
		return ""
	}
	_, d, _ := strings.Cut(a.Address, "@")
	return strings.ToLower(d)
}
