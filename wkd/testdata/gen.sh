#!/bin/sh
# Regenerates the OpenPGP public key fixtures of package wkd with GnuPG 2.2
# (see README.md). Run from this directory: sh gen.sh
# Every key is made in a throwaway GNUPGHOME with an empty passphrase; only
# public keys are exported. The output differs on every run (new keys).
set -eu

GNUPGHOME=$(mktemp -d)
export GNUPGHOME
trap 'gpgconf --kill all; rm -rf "$GNUPGHOME"' EXIT
g() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' "$@"; }
fpr() { gpg --with-colons --list-keys "$1" | awk -F: '/^fpr/ {print $10; exit}'; }
# export_key FPR FILE [GPG-OPTION...]
export_key() {
	f=$1 out=$2
	shift 2
	gpg --armor --export-options export-minimal "$@" --export "$f" >"$out"
}

J='Joe <joe@example.org>'

# A valid key: Ed25519 primary (certify, sign), Curve25519 ECDH subkey.
g --faked-system-time 20240101T000000! --quick-gen-key "Valid 2024 $J" ed25519 default never
F=$(fpr 'Valid 2024'); g --faked-system-time 20240101T000000! --quick-add-key "$F" cv25519 encr never
export_key "$F" valid-2024-ed25519.asc

# A second valid key, made a year earlier: RSA 3072 with an RSA 3072 subkey.
g --faked-system-time 20230101T000000! --quick-gen-key "Valid 2023 $J" rsa3072 sign never
F=$(fpr 'Valid 2023'); g --faked-system-time 20230101T000000! --quick-add-key "$F" rsa3072 encr never
export_key "$F" valid-2023-rsa3072.asc

# NIST P-256: ECDSA primary, ECDH subkey.
g --faked-system-time 20220101T000000! --quick-gen-key "P-256 $J" nistp256 sign never
F=$(fpr 'P-256'); g --faked-system-time 20220101T000000! --quick-add-key "$F" nistp256 encr never
export_key "$F" valid-2022-nistp256.asc

# Revoked (newest of all, 2025): its revocation certificate imported.
g --faked-system-time 20250101T000000! --quick-gen-key "Revoked $J" ed25519 default never
F=$(fpr 'Revoked'); g --faked-system-time 20250101T000000! --quick-add-key "$F" cv25519 encr never
sed 's/^:-----/-----/' "$GNUPGHOME/openpgp-revocs.d/$F.rev" | g --import
export_key "$F" revoked-2025-ed25519.asc

# Expired: made in 2020, valid for one year.
g --faked-system-time 20200101T000000! --quick-gen-key "Expired $J" ed25519 default 1y
F=$(fpr 'Expired'); g --faked-system-time 20200101T000000! --quick-add-key "$F" cv25519 encr 1y
# Exported in 2020: GnuPG leaves expired subkeys out of an export today.
export_key "$F" expired-2020-ed25519.asc --faked-system-time 20200601T000000!

# Sign-only: Ed25519 primary and no encryption subkey.
g --faked-system-time 20240101T000000! --quick-gen-key "Sign-only $J" ed25519 sign never
export_key "$(fpr 'Sign-only')" signonly-ed25519.asc

# DSA 2048 primary, ElGamal 2048 encryption subkey.
g --faked-system-time 20240101T000000! --quick-gen-key "DSA $J" dsa2048 default never
F=$(fpr 'DSA'); g --faked-system-time 20240101T000000! --quick-add-key "$F" elg2048 encr never
export_key "$F" dsa-elg2048.asc

# RSA 1024 primary and RSA 1024 encryption subkey.
g --faked-system-time 20240101T000000! --quick-gen-key "RSA-1024 $J" rsa1024 sign never
F=$(fpr 'RSA-1024'); g --faked-system-time 20240101T000000! --quick-add-key "$F" rsa1024 encr never
export_key "$F" rsa1024.asc

# Valid, but for another address.
g --faked-system-time 20240101T000000! --quick-gen-key 'Other <other@example.org>' ed25519 default never
F=$(fpr 'Other'); g --faked-system-time 20240101T000000! --quick-add-key "$F" cv25519 encr never
export_key "$F" other-uid-ed25519.asc
