package pgpmime_test

import (
	"bytes"
	"fmt"
	"log"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/caliop/relay/pgpmime"
)

// The relay holds a key for every recipient (from WKD, say) and encrypts the
// message before delivery; the decision goes into a trace header field.
func Example() {
	// In the relay the key comes from openpgp.ReadKeyRing on the WKD answer.
	bob, err := openpgp.NewEntity("Bob", "", "bob@example.test", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		log.Fatal(err)
	}
	msg := "From: alice@example.test\r\n" +
		"To: bob@example.test\r\n" +
		"Subject: Plans\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"See you at noon.\r\n"

	var out bytes.Buffer
	d, err := pgpmime.Encrypt(&out, strings.NewReader(msg), []*openpgp.Entity{bob}, pgpmime.Options{HideSubject: true})
	if err != nil {
		log.Fatal(err) // the relay decides what to do with mail it cannot encrypt
	}
	fmt.Println("X-Caliop-PGP:", d)

	header, _, _ := strings.Cut(out.String(), "\r\n\r\n")
	for _, line := range strings.Split(header, "\r\n") {
		if strings.HasPrefix(line, " boundary=") {
			line = ` boundary="caliop-pgp-…"` // random
		}
		fmt.Println(line)
	}

	// A message that is already encrypted passes through unchanged.
	d, _ = pgpmime.Check(strings.NewReader("Content-Type: application/pkcs7-mime\r\n\r\nMIAG\r\n"), pgpmime.Options{})
	fmt.Println("X-Caliop-PGP:", d)
	// Output:
	// X-Caliop-PGP: encrypted
	// From: alice@example.test
	// To: bob@example.test
	// Subject: [...]
	// MIME-Version: 1.0
	// Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";
	//  boundary="caliop-pgp-…"
	// X-Caliop-PGP: already-encrypted
}
