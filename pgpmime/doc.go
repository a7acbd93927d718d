// Package pgpmime implements PGP/MIME encryption of a whole message (RFC 3156
// §4, "OpenPGP encrypted data") with header protection (RFC 9788, "Header
// Protection for Cryptographically Protected Email").
//
// The relay calls Encrypt opportunistically, once it holds an OpenPGP key for
// every recipient. The package knows nothing about the relay: it turns one
// RFC 5322 message into another, or says why it leaves the message alone.
//
// # What Encrypt writes
//
//	<original header fields, except Content-* and MIME-Version>
//	MIME-Version: 1.0
//	Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
//	 boundary="caliop-pgp-…"
//
//	--caliop-pgp-…
//	Content-Type: application/pgp-encrypted
//
//	Version: 1
//
//	--caliop-pgp-…
//	Content-Type: application/octet-stream
//
//	-----BEGIN PGP MESSAGE-----
//	…
//	-----END PGP MESSAGE-----
//
//	--caliop-pgp-…--
//
// The ciphertext is not signed (a relay holds no sender key) and names no
// recipient: every session key packet carries the wildcard key ID 0 (RFC 9580
// §5.1), so no recipient learns which keys the others hold.
//
// Decrypted, it is the Cryptographic Payload of RFC 9788: the original body
// entity, whose Content-* header fields and body are copied byte for byte (a
// multipart/signed stays verifiable, RFC 3156 §5), with two additions in its
// header section:
//
//   - hp="cipher" on its Content-Type (RFC 9788 §2.1.1), appended to the
//     original field as a folded parameter;
//   - above the Content-* fields, the protected header fields: a copy of every
//     original header field other than Content-* and MIME-Version, then one
//     HP-Outer field (RFC 9788 §2.2) per such field as the outer header shows
//     it ("HP-Outer: Subject: [...]"), so that a receiver can tell which
//     fields were kept confidential.
//
// # Header confidentiality
//
// The outer header keeps every original field (RFC 9788 §3's
// hcp_no_confidentiality) unless Options.HideSubject is set: then each outer
// Subject reads "[...]", as RFC 9788's hcp_baseline does, and the real Subject
// survives only inside the ciphertext (hcp_baseline would also drop Comments
// and Keywords; this package keeps them). No Legacy Display Element is added: it
// would change the body, which this package never does, and RFC 9788 leaves
// it to the composer.
//
// Encryption replaces the body and the Content-Type, so a DKIM signature made
// before it no longer verifies: sign after encrypting.
//
// # What is left alone
//
// Check and Encrypt leave a message unchanged, and say why, when it is an
// Autocrypt Setup Message (Autocrypt Level 1 §4.4), already encrypted
// (multipart/encrypted, application/pkcs7-mime or application/x-pkcs7-mime
// at the top, or a text part holding an armored "-----BEGIN PGP
// MESSAGE-----" line, RFC 9580 §6.2), or, with Options.SkipLists, mailing-list
// mail (a List-Id field, RFC 2919).
package pgpmime
