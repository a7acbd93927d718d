package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/wkd"
	"github.com/caliop/relay/wkd/wkdcache"
)

// fakeKeys is a WKD cache answering from a map.
type fakeKeys map[string]*openpgp.Entity

func (f fakeKeys) Get(_ context.Context, addr string) wkdcache.Result {
	if k := f[addr]; k != nil {
		return wkdcache.Result{Address: addr, State: wkdcache.StateKey, Key: k}
	}
	return wkdcache.Result{Address: addr, State: wkdcache.StateNoKey}
}

func pgpKey(t *testing.T, email string) *openpgp.Entity {
	t.Helper()
	k, err := openpgp.NewEntity("U", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decrypts reports whether key opens the armored PGP message in data.
func decrypts(t *testing.T, data []byte, key *openpgp.Entity) []byte {
	t.Helper()
	i := bytes.Index(data, []byte("-----BEGIN PGP MESSAGE-----"))
	if i < 0 {
		return nil
	}
	blk, err := armor.Decode(bytes.NewReader(data[i:]))
	if err != nil {
		t.Fatalf("armor: %v", err)
	}
	md, err := openpgp.ReadMessage(blk.Body, openpgp.EntityList{key}, nil, nil)
	if err != nil {
		return nil
	}
	b, _ := io.ReadAll(md.UnverifiedBody)
	return b
}

const pgpBody = "From: s@origin.test\r\nSubject: secret plans\r\nContent-Type: text/plain\r\n\r\nthe plans\r\n"

// TestPGPRoutes: A and C have WKD keys, B has none, all of one domain. In
// LMTP mode B's copy goes in plaintext and A's and C's in one encrypted
// copy, each recipient with its own reply; the trace header records it.
func TestPGPRoutes(t *testing.T) {
	t.Parallel()
	a, c := pgpKey(t, "a@example.test"), pgpKey(t, "c@example.test")
	w := newWorld(t, worldOpts{pgp: &pgppolicy.Policy{Keys: fakeKeys{"a@example.test": a, "c@example.test": c}, Default: pgppolicy.Opportunistic}})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")

	r := lmtpTransact(t, w.lmtp, []string{"a@example.test", "b@example.test", "c@example.test"}, pgpBody)
	for i, rep := range r {
		if !strings.HasPrefix(rep, "250") {
			t.Errorf("recipient %d: %q", i, rep)
		}
	}
	msgs := mx.Messages()
	if len(msgs) != 2 {
		t.Fatalf("MX stored %d messages, want 2 (one encrypted, one not)", len(msgs))
	}
	for _, m := range msgs {
		switch strings.Join(m.To, ",") {
		case "a@example.test,c@example.test":
			if !bytes.Contains(m.Data, []byte("X-Caliop-PGP: encrypted\r\n")) || !bytes.Contains(m.Data, []byte("multipart/encrypted")) || bytes.Contains(m.Data, []byte("the plans")) {
				t.Errorf("encrypted copy:\n%s", m.Data)
			}
			for name, k := range map[string]*openpgp.Entity{"A": a, "C": c} {
				if p := decrypts(t, m.Data, k); !bytes.Contains(p, []byte("the plans")) {
					t.Errorf("%s cannot read the encrypted copy", name)
				}
			}
		case "b@example.test":
			if !bytes.Contains(m.Data, []byte("X-Caliop-PGP: no-key\r\n")) || !bytes.HasSuffix(m.Data, []byte("\r\nthe plans\r\n")) {
				t.Errorf("plaintext copy:\n%s", m.Data)
			}
		default:
			t.Errorf("unexpected envelope %v", m.To)
		}
	}
}

// TestPGPSMTPAndRequired: in SMTP mode a recipient of the same domain on
// the other side of the encryption line gets 452 4.5.3; under required a
// recipient without key is refused at RCPT; DKIM-signed mail is left
// alone.
func TestPGPSMTPAndRequired(t *testing.T) {
	t.Parallel()
	a := pgpKey(t, "a@example.test")
	pol := &pgppolicy.Policy{Keys: fakeKeys{"a@example.test": a}, Default: pgppolicy.Opportunistic,
		Destinations: map[string]pgppolicy.Mode{"strict.test": pgppolicy.Required}}
	w := newWorld(t, worldOpts{pgp: pol})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	w.domain("strict.test", "mx.example.test")

	rcpt, data := transact(t, w.smtp, []string{"a@example.test", "b@example.test"}, pgpBody)
	if !strings.HasPrefix(rcpt[1], "452 4.5.3") || !strings.Contains(rcpt[1], "not encrypted") {
		t.Errorf("second recipient across the encryption line: %q, want 452 4.5.3", rcpt[1])
	}
	if !strings.HasPrefix(data, "250") || len(mx.Messages()) != 1 || decrypts(t, mx.Messages()[0].Data, a) == nil {
		t.Errorf("encrypted SMTP transaction: %q", data)
	}

	rcpt, _ = transact(t, w.smtp, []string{"x@strict.test"}, pgpBody)
	if !strings.HasPrefix(rcpt[0], "450 4.7.1") {
		t.Errorf("required without key: %q, want 450 4.7.1", rcpt[0])
	}

	signed := "DKIM-Signature: v=1; a=rsa-sha256; d=origin.test; s=s; h=from; bh=x; b=y\r\n" + pgpBody
	_, data = transact(t, w.smtp, []string{"a@example.test"}, signed)
	last := mx.Messages()[len(mx.Messages())-1].Data
	if !strings.HasPrefix(data, "250") || !bytes.Contains(last, []byte("X-Caliop-PGP: dkim\r\n")) || !bytes.Contains(last, []byte("the plans")) {
		t.Errorf("DKIM-signed message: %q\n%s", data, last)
	}
}

// swappableWKD answers WKD lookups with whatever key is set now.
type swappableWKD struct {
	mu  sync.Mutex
	key *openpgp.Entity
}

func (s *swappableWKD) set(k *openpgp.Entity) { s.mu.Lock(); s.key = k; s.mu.Unlock() }

func (s *swappableWKD) Lookup(_ context.Context, _ string) (wkd.Lookup, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return wkd.Lookup{Key: s.key, Fingerprint: fmt.Sprintf("%X", s.key.PrimaryKey.Fingerprint)}, nil
}

// TestPGPKeyChangeKeepsEncrypting: WKD serves a new key while the pinned
// one is valid. Without accept_key_change the MX still gets PGP/MIME,
// which the pinned key opens (never plaintext); with it, the new key's.
func TestPGPKeyChangeKeepsEncrypting(t *testing.T) {
	t.Parallel()
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept_key_change=%v", accept), func(t *testing.T) {
			t.Parallel()
			pinned, changed := pgpKey(t, "a@example.test"), pgpKey(t, "a@example.test")
			dir := &swappableWKD{key: pinned}
			st, err := store.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			cache, err := wkdcache.Open(wkdcache.Config{WKD: dir, Store: st, AcceptKeyChange: accept, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			w := newWorld(t, worldOpts{pgp: &pgppolicy.Policy{Keys: cache, Default: pgppolicy.Opportunistic}})
			mx := w.mx("mx.example.test", mxtest.Behavior{})
			w.domain("example.test", "mx.example.test")
			if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, pgpBody); !strings.HasPrefix(r[0], "250") {
				t.Fatalf("first message: %q", r)
			}
			dir.set(changed)
			now = now.Add(25 * time.Hour) // past the cache's key lifetime: looked up again
			if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, pgpBody); !strings.HasPrefix(r[0], "250") {
				t.Fatalf("second message: %q", r)
			}
			msgs := mx.Messages()
			if len(msgs) != 2 {
				t.Fatalf("MX stored %d messages, want 2", len(msgs))
			}
			second := msgs[1].Data
			if bytes.Contains(second, []byte("the plans")) || !bytes.Contains(second, []byte("X-Caliop-PGP: encrypted\r\n")) {
				t.Fatalf("after the key change the message went unencrypted:\n%s", second)
			}
			want, other := pinned, changed
			if accept {
				want, other = changed, pinned
			}
			if p := decrypts(t, second, want); !bytes.Contains(p, []byte("the plans")) {
				t.Errorf("the expected key cannot read the message")
			}
			if decrypts(t, second, other) != nil {
				t.Errorf("the other key can read the message")
			}
			if cache.KeyChanges() != 1 {
				t.Errorf("%d key changes counted, want 1", cache.KeyChanges())
			}
		})
	}
}
