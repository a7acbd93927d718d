package wkd

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

func TestSelectGenerated(t *testing.T) {
	t.Parallel()
	created := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func() time.Time { return created }
	v6 := &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd25519, Time: at}
	v6x448 := &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoEd448, Time: at}
	v4 := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at}
	tests := []struct {
		name   string
		data   func(t testing.TB) []byte
		now    time.Time
		usable bool
		says   string // in the rejection
	}{
		{name: "v6 Ed25519/X25519", usable: true, data: func(t testing.TB) []byte { return generate(t, recipient, v6, nil) }},
		{name: "v6 Ed448/X448", usable: true, data: func(t testing.TB) []byte { return generate(t, recipient, v6x448, nil) }},
		{name: "user ID in capitals", usable: true, data: func(t testing.TB) []byte { return generate(t, "JOE@Example.ORG", v4, nil) }},
		{
			name: "RSA 2048", usable: true,
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2048, Time: at}, nil)
			},
		},
		{
			name: "RSA 2047 (go-crypto's default minimum)", says: "RSA 2047 bits, under 2048",
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 2047, Time: at}, nil)
			},
		},
		{
			name: "Brainpool P-256", says: `curve "BrainpoolP256", not accepted`,
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{Algorithm: packet.PubKeyAlgoECDSA, Curve: packet.CurveBrainpoolP256, Time: at}, nil)
			},
		},
		{
			name: "post-quantum (not in the accepted list)", says: "algorithm 30 not accepted",
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{V6Keys: true, Algorithm: packet.PubKeyAlgoMldsa65Ed25519, Time: at}, nil)
			},
		},
		{
			name: "look-alike address", says: "no user ID",
			data: func(t testing.TB) []byte { return generate(t, "joe@example.org.evil.test", v4, nil) },
		},
		{
			name: "expired one hour after creation", says: "expired", now: created.Add(2 * time.Hour),
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at, KeyLifetimeSecs: 3600}, nil)
			},
		},
		{
			name: "same key before it expires", usable: true, now: created.Add(30 * time.Minute),
			data: func(t testing.TB) []byte {
				return generate(t, recipient, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: at, KeyLifetimeSecs: 3600}, nil)
			},
		},
		{
			name: "created after now", says: "no valid self-signature", now: created.Add(-time.Hour),
			data: func(t testing.TB) []byte { return generate(t, recipient, v4, nil) },
		},
		{
			name: "revoked (key compromised)", says: "revoked",
			data: func(t testing.TB) []byte {
				return generate(t, recipient, v4, func(e *openpgp.Entity) error {
					return e.Revoke(packet.KeyCompromised, "", v4)
				})
			},
		},
		{
			name: "encryption subkey revoked", says: "no usable encryption key",
			data: func(t testing.TB) []byte {
				return generate(t, recipient, v4, func(e *openpgp.Entity) error {
					return e.Subkeys[0].Revoke(packet.KeySuperseded, "", v4)
				})
			},
		},
		{
			name: "v6 key without user ID", says: "no user ID",
			data: func(t testing.TB) []byte {
				e, err := openpgp.NewEntityWithoutId(v6)
				if err != nil {
					t.Fatal(err)
				}
				var b bytes.Buffer
				if err := e.Serialize(&b); err != nil {
					t.Fatal(err)
				}
				return b.Bytes()
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := tt.data(t)
			now := tt.now
			if now.IsZero() {
				now = created.Add(24 * time.Hour)
			}
			key, rejected, err := Select(data, recipient, now)
			if tt.usable {
				checkSelected(t, key, rejected, err, data)
				return
			}
			checkSelected(t, key, rejected, err, nil)
			if len(rejected) != 1 || !strings.HasPrefix(rejected[0], fpr(t, data)+": ") || !strings.Contains(rejected[0], tt.says) {
				t.Errorf("rejected = %q, want one line for %s saying %q", rejected, fpr(t, data), tt.says)
			}
		})
	}
}
