package wkd

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// MinRSABits is the smallest RSA modulus accepted, for the primary key
// and the encryption subkey alike.
const MinRSABits = 2048

// armorStart begins every ASCII-armored block (RFC 9580 §6.2).
const armorStart = "-----BEGIN PGP "

// Select picks the key to encrypt to for address among the keys in data,
// as Client.Lookup does with a directory's answer. data holds one or more
// transferable public keys (RFC 9580 §10.1), binary or ASCII-armored, one
// after another (draft §3.1 lets a directory send revoked keys along with
// the current one).
//
// A key is usable when, at now:
//   - its primary key and its encryption key use an accepted algorithm:
//     RSA of at least MinRSABits, ECDH, ECDSA or EdDSA on Curve25519 or
//     NIST P-256, P-384 or P-521, or X25519, X448, Ed25519 or Ed448 (not
//     DSA, ElGamal, Brainpool, secp256k1 or algorithms unknown here);
//   - it is not revoked and not expired, and has a valid self-signature;
//   - it has a user ID whose address is address (local part compared with
//     ASCII letters folded, domain in A-labels), with a valid,
//     unrevoked self-certification;
//   - it has a valid, unexpired, unrevoked key flagged for encryption (a
//     subkey, or the primary key itself).
//
// Of several usable keys the newest (primary key creation time, then
// encryption key creation time) wins. The returned strings say, one line
// each, why the other keys were not taken. The error wraps ErrNoKey when
// no key is usable, and ErrUnknown when data does not parse.
func Select(data []byte, address string, now time.Time) (*openpgp.Entity, []string, error) {
	local, domain, err := splitAddress(address)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	entities, err := parseKeys(data)
	if err != nil {
		return nil, nil, err
	}
	cfg := policy()
	var (
		best     *openpgp.Entity
		bestEnc  time.Time
		rejected []string
	)
	for _, e := range entities {
		enc, reason := check(e, local, domain, now, cfg)
		if reason != "" {
			rejected = append(rejected, fingerprint(e)+": "+reason)
			continue
		}
		switch {
		case best == nil:
		case newer(e, enc, best, bestEnc):
			rejected = append(rejected, fingerprint(best)+": usable, but older than "+fingerprint(e))
		default:
			rejected = append(rejected, fingerprint(e)+": usable, but older than "+fingerprint(best))
			continue
		}
		best, bestEnc = e, enc
	}
	if best == nil {
		return nil, rejected, fmt.Errorf("%w: none of %d keys is usable for %s: %s",
			ErrNoKey, len(entities), address, strings.Join(rejected, "; "))
	}
	return best, rejected, nil
}

// newer reports whether key e (encryption key created at enc) is newer
// than key b (encryption key created at benc).
func newer(e *openpgp.Entity, enc time.Time, b *openpgp.Entity, benc time.Time) bool {
	et, bt := e.PrimaryKey.CreationTime, b.PrimaryKey.CreationTime
	if !et.Equal(bt) {
		return et.After(bt)
	}
	return enc.After(benc)
}

// check returns the creation time of e's encryption key if e is usable
// for local@domain at now, else why not.
func check(e *openpgp.Entity, local, domain string, now time.Time, cfg *packet.Config) (time.Time, string) {
	if e.PrivateKey != nil {
		return time.Time{}, "holds secret key material, not a public key"
	}
	if reason := checkAlgorithm(e.PrimaryKey, "primary key"); reason != "" {
		return time.Time{}, reason
	}
	if _, err := e.VerifyPrimaryKey(now, cfg); err != nil {
		switch {
		case errors.Is(err, pgperrors.ErrKeyRevoked):
			return time.Time{}, "revoked"
		case errors.Is(err, pgperrors.ErrKeyExpired):
			return time.Time{}, "expired"
		}
		return time.Time{}, "no valid self-signature: " + err.Error()
	}
	if reason := checkIdentity(e, local, domain, now, cfg); reason != "" {
		return time.Time{}, reason
	}
	enc, err := e.EncryptionKeyWithError(now, cfg)
	if err != nil {
		return time.Time{}, "no usable encryption key: " + selectionDetail(err)
	}
	if reason := checkAlgorithm(enc.PublicKey, "encryption key"); reason != "" {
		return time.Time{}, reason
	}
	return enc.PublicKey.CreationTime, ""
}

// checkIdentity says why e has no valid user ID for local@domain, or ""
// if it has one.
func checkIdentity(e *openpgp.Entity, local, domain string, now time.Time, cfg *packet.Config) string {
	var invalid []string
	for _, id := range e.Identities {
		if !addressMatches(userIDAddress(id.UserId), local, domain) {
			continue
		}
		if _, err := id.Verify(now, cfg); err != nil {
			invalid = append(invalid, fmt.Sprintf("user ID %q: %v", id.Name, err))
			continue
		}
		return ""
	}
	if len(invalid) > 0 {
		return strings.Join(invalid, ", ")
	}
	return "no user ID for " + local + "@" + domain
}

// userIDAddress returns the mail address of a user ID: the part in angle
// brackets of "Name (comment) <addr>", or a bare address.
func userIDAddress(u *packet.UserId) string {
	if u == nil {
		return ""
	}
	if u.Email != "" {
		return u.Email
	}
	if id := strings.TrimSpace(u.Id); strings.Contains(id, "@") && !strings.ContainsAny(id, " <>") {
		return id
	}
	return ""
}

// addressMatches compares a user ID address with local@domain: the
// local part with ASCII letters folded (as the hash of draft §3.1 is),
// the domain in A-labels.
func addressMatches(addr, local, domain string) bool {
	l, d, err := splitAddress(addr)
	return err == nil && d == domain && asciiEqualFold(l, local)
}

// parseKeys reads every key of data, binary or armored. A body that does
// not parse is ErrUnknown; one that parses to keys of unsupported
// versions or algorithms only is ErrNoKey.
func parseKeys(data []byte) (openpgp.EntityList, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty key data", ErrUnknown)
	}
	if !bytes.HasPrefix(trimmed, []byte(armorStart)) {
		return readKeyRing(trimmed)
	}
	var all openpgp.EntityList
	blocks := bytes.Split(trimmed, []byte(armorStart))
	for _, b := range blocks[1:] {
		block, err := armor.Decode(bytes.NewReader(append([]byte(armorStart), b...)))
		if err != nil {
			return nil, fmt.Errorf("%w: armor: %w", ErrUnknown, err)
		}
		if block.Type != openpgp.PublicKeyType {
			return nil, fmt.Errorf("%w: armored %q, want %q", ErrUnknown, block.Type, openpgp.PublicKeyType)
		}
		var body bytes.Buffer
		if _, err := body.ReadFrom(block.Body); err != nil {
			return nil, fmt.Errorf("%w: armor: %w", ErrUnknown, err)
		}
		el, err := readKeyRing(body.Bytes())
		if err != nil {
			return nil, err
		}
		all = append(all, el...)
	}
	return all, nil
}

// readKeyRing reads binary keys. go-crypto skips keys it cannot read as
// long as one can be read.
func readKeyRing(data []byte) (openpgp.EntityList, error) {
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	var unsupported pgperrors.UnsupportedError
	switch {
	case err == nil && len(el) > 0:
		return el, nil
	case errors.As(err, &unsupported):
		return nil, fmt.Errorf("%w: no key of a supported version and algorithm: %w", ErrNoKey, err)
	case err == nil:
		return nil, fmt.Errorf("%w: no key in key data", ErrUnknown)
	}
	return nil, fmt.Errorf("%w: key data: %w", ErrUnknown, err)
}

// fingerprint returns the key's fingerprint in uppercase hex.
func fingerprint(e *openpgp.Entity) string {
	return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint)
}

// selectionDetail shortens go-crypto's encryption key selection error.
func selectionDetail(err error) string {
	var v pgperrors.ErrEncryptionKeySelection
	if p, ok := err.(*pgperrors.ErrEncryptionKeySelection); ok && p != nil {
		v = *p
	} else if !errors.As(err, &v) {
		return err.Error()
	}
	switch {
	case v.PrimaryKeyErr != nil:
		return v.PrimaryKeyErr.Error()
	case v.EncSelectionKeyId != nil:
		return fmt.Sprintf("subkey %s: %v", *v.EncSelectionKeyId, v.EncSelectionErr)
	case v.EncSelectionErr != nil:
		return v.EncSelectionErr.Error()
	}
	return err.Error()
}
