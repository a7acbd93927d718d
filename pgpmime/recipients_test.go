package pgpmime

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// TestHiddenRecipients: two recipients each decrypt, and no session key
// packet names a key (wildcard key ID 0, RFC 9580 §5.1).
func TestHiddenRecipients(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	d, err := Encrypt(&out, strings.NewReader(mixedMessage), []*openpgp.Entity{key("A"), key("C")}, Options{})
	if err != nil || d != Encrypted {
		t.Fatalf("Encrypt = %q, %v", d, err)
	}
	armored := outerParts(t, out.Bytes(), mixedFields)
	var inners []string
	for _, k := range []string{"A", "C"} {
		inner, err := decrypt(armored, key(k))
		if err != nil {
			t.Fatalf("%s decrypts: %v", k, err)
		}
		inners = append(inners, string(inner))
	}
	if inners[0] != inners[1] || !strings.HasSuffix(inners[0], mixedBody) {
		t.Error("A and C read different plaintexts, or not the original body")
	}
	if _, err := decrypt(armored, key("B")); err == nil {
		t.Error("B, not a recipient, decrypted the message")
	}

	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	pr := packet.NewReader(block.Body)
	var keyIDs []uint64
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ek, ok := p.(*packet.EncryptedKey); ok {
			keyIDs = append(keyIDs, ek.KeyId)
		}
		if _, ok := p.(*packet.SymmetricallyEncrypted); ok {
			break
		}
	}
	if len(keyIDs) != 2 || keyIDs[0] != 0 || keyIDs[1] != 0 {
		t.Errorf("session key packets name keys %x, want two wildcards (0)", keyIDs)
	}
}

func TestEncryptErrors(t *testing.T) {
	t.Parallel()
	expiring, err := openpgp.NewEntity("E", "", "e@example.test",
		&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: 3600})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		msg  string
		keys []*openpgp.Entity
		opts Options
		want error
	}{
		{"no keys", qpMessage, nil, Options{}, ErrNoKeys},
		{"a nil key", qpMessage, []*openpgp.Entity{key("A"), nil}, Options{}, ErrNoKeys},
		{"key expired at Now", qpMessage, []*openpgp.Entity{expiring},
			Options{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}, ErrEncrypt},
		{"header line without a field name", "From a@example.test Mon\r\n\r\nhi\r\n",
			[]*openpgp.Entity{key("A")}, Options{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			d, err := Encrypt(&out, strings.NewReader(tt.msg), tt.keys, tt.opts)
			if !errors.Is(err, tt.want) || d != "" {
				t.Fatalf("Encrypt = %q, %v; want %v", d, err, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("%d octets written on error", out.Len())
			}
		})
	}
	// The same expiring key works at the present time: Now is what decided.
	if d, err := Encrypt(io.Discard, strings.NewReader(qpMessage), []*openpgp.Entity{expiring}, Options{}); err != nil || d != Encrypted {
		t.Errorf("Encrypt with a valid key = %q, %v", d, err)
	}
}

// TestSharedKeyConcurrently: the relay may share one Entity between
// deliveries; under -race this fails if Encrypt touches it unsafely.
func TestSharedKeyConcurrently(t *testing.T) {
	t.Parallel()
	shared := []*openpgp.Entity{key("A")}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := Encrypt(io.Discard, strings.NewReader(qpMessage), shared, Options{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestDeterministic: with Rand and Now given, the output is a function of
// the input; nothing else random is hidden inside.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	fixed := time.Now().Add(time.Minute) // after the test keys were made
	now := func() time.Time { return fixed }
	run := func(seed byte) string {
		var out bytes.Buffer
		opts := Options{Now: now, Rand: rand.NewChaCha8([32]byte{seed})}
		if _, err := Encrypt(&out, strings.NewReader(qpMessage), []*openpgp.Entity{key("A")}, opts); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if a, b := run(1), run(1); a != b {
		t.Error("same Rand and Now, different output")
	}
	if a, b := run(1), run(2); a == b {
		t.Error("different Rand, same output")
	}
}

// TestKeyChecksKept: a key's self-signatures are checked at its first
// message and the result kept in the Entity, not checked at every one.
func TestKeyChecksKept(t *testing.T) {
	t.Parallel()
	k := key("C")
	checked := func() bool {
		for _, id := range k.Identities {
			for _, sig := range id.SelfCertifications {
				if sig.Valid == nil || !*sig.Valid {
					return false
				}
			}
		}
		return true
	}
	if checked() {
		t.Fatal("a fresh key's self-signatures are already checked")
	}
	if _, err := Encrypt(io.Discard, strings.NewReader(qpMessage), []*openpgp.Entity{k}, Options{}); err != nil {
		t.Fatal(err)
	}
	if !checked() {
		t.Error("the self-signature check of the first message was not kept: every message checks again")
	}
}
