package wkd

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

const recipient = "joe@example.org"

var after2025 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fixture returns testdata/<name>.asc (see testdata/README.md).
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".asc")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unarmor returns the binary form of an armored key.
func unarmor(t testing.TB, armored []byte) []byte {
	t.Helper()
	block, err := armor.Decode(bytes.NewReader(armored))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(block.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fpr returns the fingerprint of the first key of data, read with
// go-crypto directly.
func fpr(t testing.TB, data []byte) string {
	t.Helper()
	el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
	if err != nil {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	}
	if err != nil || len(el) == 0 {
		t.Fatalf("reading key: %v", err)
	}
	return fmt.Sprintf("%X", el[0].PrimaryKey.Fingerprint)
}

// generate makes a key for email with go-crypto and returns its public
// part, binary. edit, if not nil, changes the entity before export.
func generate(t testing.TB, email string, cfg *packet.Config, edit func(*openpgp.Entity) error) []byte {
	t.Helper()
	e, err := openpgp.NewEntity("Test", "", email, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		if err := edit(e); err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := e.Serialize(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
