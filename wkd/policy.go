package wkd

import (
	"fmt"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// acceptedAlgorithm names the public-key algorithms (RFC 9580 §9.1) a key
// may use to be encrypted to; any other is refused: DSA and ElGamal
// (which RFC 9580 deprecates), the deprecated RSA encrypt-only and
// sign-only identifiers, and algorithms this package does not list (the
// post-quantum ones among them).
func acceptedAlgorithm(a packet.PublicKeyAlgorithm) (string, bool) {
	switch a {
	case packet.PubKeyAlgoRSA:
		return "RSA", true
	case packet.PubKeyAlgoECDH:
		return "ECDH", true
	case packet.PubKeyAlgoECDSA:
		return "ECDSA", true
	case packet.PubKeyAlgoEdDSA:
		return "EdDSA", true
	case packet.PubKeyAlgoX25519:
		return "X25519", true
	case packet.PubKeyAlgoX448:
		return "X448", true
	case packet.PubKeyAlgoEd25519:
		return "Ed25519", true
	case packet.PubKeyAlgoEd448:
		return "Ed448", true
	case packet.PubKeyAlgoDSA:
		return "DSA", false
	case packet.PubKeyAlgoElGamal:
		return "ElGamal", false
	}
	return fmt.Sprintf("algorithm %d", a), false
}

// acceptedCurve reports whether ECDH, ECDSA and EdDSA keys (the RFC 9580
// §9.2 OID-based ones) may use curve.
func acceptedCurve(c packet.Curve) bool {
	switch c {
	case packet.Curve25519, packet.CurveNistP256, packet.CurveNistP384, packet.CurveNistP521:
		return true
	}
	return false
}

// policy returns the go-crypto openpgp/v2 configuration for key
// selection: its weak-key checks (on the primary key and on every
// encryption subkey candidate) refuse what acceptedAlgorithm,
// acceptedCurve and MinRSABits refuse, so that a key with one weak and
// one strong encryption subkey still gets the strong one. A new value
// each call: nothing shared between lookups.
func policy() *packet.Config {
	reject := make(map[packet.PublicKeyAlgorithm]bool)
	for a := 0; a < 256; a++ {
		if _, ok := acceptedAlgorithm(packet.PublicKeyAlgorithm(a)); !ok {
			reject[packet.PublicKeyAlgorithm(a)] = true
		}
	}
	return &packet.Config{
		MinRSABits:                MinRSABits,
		RejectPublicKeyAlgorithms: reject,
		RejectCurves: map[packet.Curve]bool{
			packet.Curve448:           true, // legacy OID form; X448/Ed448 are accepted
			packet.CurveSecP256k1:     true,
			packet.CurveBrainpoolP256: true,
			packet.CurveBrainpoolP384: true,
			packet.CurveBrainpoolP512: true,
		},
	}
}

// checkAlgorithm says why pk (described as what) is not acceptable, or ""
// if it is. It repeats the policy checks so that the reason is plain.
func checkAlgorithm(pk *packet.PublicKey, what string) string {
	name, ok := acceptedAlgorithm(pk.PubKeyAlgo)
	if !ok {
		return fmt.Sprintf("%s algorithm %s not accepted", what, name)
	}
	switch pk.PubKeyAlgo {
	case packet.PubKeyAlgoRSA:
		bits, err := pk.BitLength()
		if err != nil || bits < MinRSABits {
			return fmt.Sprintf("%s is RSA %d bits, under %d", what, bits, MinRSABits)
		}
	case packet.PubKeyAlgoECDH, packet.PubKeyAlgoECDSA, packet.PubKeyAlgoEdDSA:
		curve, err := pk.Curve()
		if err != nil || !acceptedCurve(curve) {
			return fmt.Sprintf("%s is %s on curve %q, not accepted", what, name, curve)
		}
	}
	return ""
}
