package wkd

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

func TestSelectFixtures(t *testing.T) {
	t.Parallel()
	valid24, valid23 := fixture(t, "valid-2024-ed25519"), fixture(t, "valid-2023-rsa3072")
	p256, revoked := fixture(t, "valid-2022-nistp256"), fixture(t, "revoked-2025-ed25519")
	expired, signOnly := fixture(t, "expired-2020-ed25519"), fixture(t, "signonly-ed25519")
	dsa, rsa1024 := fixture(t, "dsa-elg2048"), fixture(t, "rsa1024")
	other := fixture(t, "other-uid-ed25519")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, []byte("\n")) }
	bin := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, unarmor(t, p)...)
		}
		return out
	}

	type reject struct {
		key  []byte
		says string
	}
	tests := []struct {
		name     string
		data     []byte
		address  string
		now      time.Time
		want     []byte // the key chosen; nil: ErrNoKey
		rejected []reject
	}{
		{name: "one valid Ed25519 key", data: valid24, want: valid24},
		{name: "one valid key, binary", data: bin(valid24), want: valid24},
		{name: "RSA 3072", data: valid23, want: valid23},
		{name: "NIST P-256", data: p256, want: p256},
		{name: "address case folded", data: valid24, address: "JOE@Example.ORG", want: valid24},
		{
			name: "revoked newer key and a valid one", data: cat(revoked, valid23), want: valid23,
			rejected: []reject{{revoked, "revoked"}},
		},
		{
			name: "revoked and valid, binary", data: bin(revoked, valid23), want: valid23,
			rejected: []reject{{revoked, "revoked"}},
		},
		{
			name: "newest of two valid keys", data: cat(valid23, valid24), want: valid24,
			rejected: []reject{{valid23, "older than"}},
		},
		{
			name: "newest of two valid keys, other order", data: cat(valid24, valid23), want: valid24,
			rejected: []reject{{valid23, "older than"}},
		},
		{
			name: "newest of three valid keys, binary", data: bin(p256, valid24, valid23), want: valid24,
			rejected: []reject{{p256, "older than"}, {valid23, "older than"}},
		},
		{
			name: "key for another address", data: cat(other, valid23), want: valid23,
			rejected: []reject{{other, "no user ID for joe@example.org"}},
		},
		{name: "only a key for another address", data: other, rejected: []reject{{other, "no user ID for joe@example.org"}}},
		{name: "valid key, other recipient", data: valid24, address: "jo@example.org", rejected: []reject{{valid24, "no user ID for jo@example.org"}}},
		{name: "valid key, other domain", data: valid24, address: "joe@example.net", rejected: []reject{{valid24, "no user ID"}}},
		{name: "expired", data: expired, rejected: []reject{{expired, "expired"}}},
		{name: "expired key while it was valid", data: expired, now: time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC), want: expired},
		{name: "revoked", data: revoked, rejected: []reject{{revoked, "revoked"}}},
		{name: "sign-only", data: signOnly, rejected: []reject{{signOnly, "no usable encryption key"}}},
		{name: "DSA and ElGamal", data: dsa, rejected: []reject{{dsa, "primary key algorithm DSA not accepted"}}},
		{name: "RSA 1024", data: rsa1024, rejected: []reject{{rsa1024, "RSA 1024 bits, under 2048"}}},
		{
			name: "every kind of unusable key", data: cat(expired, revoked, signOnly, dsa, rsa1024, other),
			rejected: []reject{
				{expired, "expired"}, {revoked, "revoked"}, {signOnly, "no usable encryption key"},
				{dsa, "DSA"}, {rsa1024, "RSA 1024"}, {other, "no user ID"},
			},
		},
		{
			name: "one usable among the unusable, binary", data: bin(expired, revoked, signOnly, dsa, valid23, rsa1024, other), want: valid23,
			rejected: []reject{
				{expired, "expired"}, {revoked, "revoked"}, {signOnly, "no usable encryption key"},
				{dsa, "DSA"}, {rsa1024, "RSA 1024"}, {other, "no user ID"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			address, now := tt.address, tt.now
			if address == "" {
				address = recipient
			}
			if now.IsZero() {
				now = after2025
			}
			key, rejected, err := Select(tt.data, address, now)
			checkSelected(t, key, rejected, err, tt.want)
			if len(rejected) != len(tt.rejected) {
				t.Errorf("rejected %d keys, want %d:\n%s", len(rejected), len(tt.rejected), strings.Join(rejected, "\n"))
			}
			for _, r := range tt.rejected {
				want := fpr(t, r.key) + ": "
				if !containsLine(rejected, want, r.says) {
					t.Errorf("no rejection %q...%q in:\n%s", want, r.says, strings.Join(rejected, "\n"))
				}
			}
		})
	}
}

func checkSelected(t *testing.T, key *openpgp.Entity, rejected []string, err error, want []byte) {
	t.Helper()
	if want == nil {
		if !errors.Is(err, ErrNoKey) || errors.Is(err, ErrUnknown) {
			t.Fatalf("err = %v, want ErrNoKey", err)
		}
		if key != nil {
			t.Errorf("key %s returned with an error", fingerprint(key))
		}
		return
	}
	if err != nil {
		t.Fatalf("err = %v, rejected %q", err, rejected)
	}
	if got, w := fingerprint(key), fpr(t, want); got != w {
		t.Errorf("chose %s, want %s (rejected %q)", got, w, rejected)
	}
}

func containsLine(lines []string, prefix, sub string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestSelectUnparseable(t *testing.T) {
	t.Parallel()
	valid := fixture(t, "valid-2024-ed25519")
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrUnknown},
		{"blank", []byte("\r\n  \n"), ErrUnknown},
		{"HTML page", []byte("<!doctype html><title>Not here</title>"), ErrUnknown},
		{"truncated binary", unarmor(t, valid)[:40], ErrUnknown},
		{"bad armor checksum", bytes.Replace(valid, []byte("\n="), []byte("\n=AAAA"), 1), ErrUnknown},
		{"armored message, not a key", []byte("-----BEGIN PGP MESSAGE-----\n\nwcBMA0\n=AAAA\n-----END PGP MESSAGE-----\n"), ErrUnknown},
		{"malformed address", valid, ErrNoKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			address := recipient
			if tt.name == "malformed address" {
				address = "joe"
			}
			key, _, err := Select(tt.data, address, after2025)
			if !errors.Is(err, tt.want) || key != nil {
				t.Errorf("Select = %v, %v; want error %v", key, err, tt.want)
			}
		})
	}
}

func TestSelectRefusesSecretKeys(t *testing.T) {
	t.Parallel()
	e, err := openpgp.NewEntity("Test", "", recipient, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := e.SerializePrivate(&b, nil); err != nil {
		t.Fatal(err)
	}
	key, rejected, err := Select(b.Bytes(), recipient, time.Now())
	if !errors.Is(err, ErrNoKey) || key != nil || len(rejected) != 1 || !strings.Contains(rejected[0], "secret key") {
		t.Errorf("Select(secret key) = %v, %q, %v; want ErrNoKey, secret key rejected", key, rejected, err)
	}
}
