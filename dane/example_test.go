package dane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/miekg/dns"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/resolver"
)

// signedZone stands in for *resolver.Resolver: it answers TLSA queries
// from a DNSSEC-signed zone, with an authenticated NXDOMAIN for names it
// does not hold.
type signedZone map[string][]*dns.TLSA

func (z signedZone) LookupTLSA(_ context.Context, name string) ([]*dns.TLSA, resolver.Result, error) {
	rrs, ok := z[name]
	if !ok {
		return nil, resolver.Result{Authentic: true}, fmt.Errorf("%w: TLSA %s", resolver.ErrNXDomain, name)
	}
	return rrs, resolver.Result{Authentic: true}, nil
}

// serverCert makes the self-signed certificate an MX host might present.
func serverCert(name string) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert
}

// Look up the TLSA records of an MX host, then check the certificate it
// presents in the TLS handshake.
func Example() {
	ctx := context.Background()
	cert := serverCert("mx.example.org")
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	zone := signedZone{
		// _25._tcp.mx.example.org. IN TLSA 3 1 1 <SHA2-256 of the server's key>
		"_25._tcp.mx.example.org": {{
			Hdr:   dns.RR_Header{Name: "_25._tcp.mx.example.org.", Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 3600},
			Usage: dane.UsageDANEEE, Selector: dane.SelectorSPKI, MatchingType: dane.MatchSHA256,
			Certificate: hex.EncodeToString(spki[:]),
		}},
	}

	set, err := dane.Lookup(ctx, zone, "mx.example.org", "")
	if err != nil {
		fmt.Println("MX host unusable, try another:", err)
		return
	}
	fmt.Println(set.Name, "secure:", set.Secure, "usable records:", len(set.Usable()))

	// TLS is now mandatory with mx.example.org. The chain would come from
	// tls.ConnectionState.PeerCertificates; the reference identifiers are
	// the TLSA base domain and the next-hop domain (RFC 7672 §3.2.2).
	names := []string{set.Name, "example.org"}
	err = dane.Verify(set, []*x509.Certificate{cert}, names, time.Now())
	fmt.Println("server authenticated:", err == nil)

	// A man in the middle with a certificate of its own for the name.
	err = dane.Verify(set, []*x509.Certificate{serverCert("mx.example.org")}, names, time.Now())
	fmt.Println("impostor authenticated:", err == nil, "no match:", errors.Is(err, dane.ErrNoMatch))

	// A host without TLSA records: an authenticated denial, DANE does not
	// apply.
	set, err = dane.Lookup(ctx, zone, "mx2.example.org", "")
	fmt.Println(set.Name, "secure:", set.Secure, "records:", len(set.Records), err)
	// Output:
	// mx.example.org secure: true usable records: 1
	// server authenticated: true
	// impostor authenticated: false no match: true
	// mx2.example.org secure: true records: 0 <nil>
}
