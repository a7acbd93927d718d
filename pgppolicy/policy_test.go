package pgppolicy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/caliop/relay/message"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/wkd/wkdcache"
)

type keys map[string]wkdcache.Result

func (k keys) Get(_ context.Context, a string) wkdcache.Result { return k[a] }

func newKey(t *testing.T, email string) *openpgp.Entity {
	k, err := openpgp.NewEntity("U", "", email, &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestDecide(t *testing.T) {
	t.Parallel()
	k := newKey(t, "a@example.test")
	p := &Policy{
		Keys:    keys{"a@example.test": {State: wkdcache.StateKey, Key: k}, "u@strict.test": {State: wkdcache.StateUnknown}},
		Default: Opportunistic, Destinations: map[string]Mode{"strict.test": Required, "vip@strict.test": Off, "plain.test": Off},
	}
	ctx := context.Background()
	if got, r := p.Decide(ctx, "a@example.test"); got != k || r != nil {
		t.Errorf("key present: %v %v", got, r)
	}
	if got, r := p.Decide(ctx, "b@example.test"); got != nil || r != nil {
		t.Errorf("opportunistic without key: %v %v", got, r)
	}
	if _, r := p.Decide(ctx, "x@strict.test"); r == nil || r.Code != 450 {
		t.Errorf("required without key: %v, want 450", r)
	}
	p.Permanent = true
	if _, r := p.Decide(ctx, "x@strict.test"); r == nil || r.Code != 550 {
		t.Errorf("required without key, permanent: %v, want 550", r)
	}
	if _, r := p.Decide(ctx, "u@strict.test"); r == nil || r.Code != 450 {
		t.Errorf("required, lookup unknown: %v, want 450 even when permanent", r)
	}
	if m := p.ModeFor("VIP@Strict.TEST"); m != Off {
		t.Errorf("address override: %s", m)
	}
}

// TestDKIM: DKIM-signed mail is left alone unless a key for its From
// domain lets Caliop sign the encrypted message again (RFC 6376), or the
// operator accepts breaking the signature.
func TestDKIM(t *testing.T) {
	t.Parallel()
	msg := "DKIM-Signature: v=1; a=rsa-sha256; d=origin.test; s=old; h=from; bh=x; b=y\r\nFrom: S <s@Origin.test>\r\nTo: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
	open := messageOf(msg)
	k := newKey(t, "a@example.test")
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)

	var out bytes.Buffer
	p := &Policy{}
	if d, err := p.Encrypt(&out, open, []*openpgp.Entity{k}); d != DKIM || err != nil || out.String() != msg {
		t.Errorf("no DKIM key: %s %v, want the message unchanged", d, err)
	}

	out.Reset()
	p = &Policy{DKIM: map[string]DKIMKey{"origin.test": {Selector: "caliop", Signer: priv}}}
	d, err := p.Encrypt(&out, open, []*openpgp.Entity{k})
	if d != pgpmime.Encrypted || err != nil {
		t.Fatalf("with a DKIM key: %s %v", d, err)
	}
	record := "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(out.Bytes()), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name == "caliop._domainkey.origin.test" {
			return []string{record}, nil
		}
		return nil, io.EOF
	}})
	good := false
	for _, v := range vs {
		good = good || v.Domain == "origin.test" && v.Err == nil
	}
	if err != nil || !good || !bytes.Contains(out.Bytes(), []byte("multipart/encrypted")) {
		t.Errorf("re-signed encrypted message: verifications %+v, err %v", vs, err)
	}

	out.Reset()
	p = &Policy{EncryptDKIMSigned: true}
	if d, _ := p.Encrypt(&out, open, []*openpgp.Entity{k}); d != pgpmime.Encrypted {
		t.Errorf("encrypt_dkim_signed: %s", d)
	}
}

// messageOf is s as pgpmime.Message, its header parsed.
func messageOf(s string) pgpmime.Message {
	h, _ := message.ReadHeader(bufio.NewReader(strings.NewReader(s)))
	return pgpmime.Message{Header: h, Open: func() io.Reader { return strings.NewReader(s) }}
}
