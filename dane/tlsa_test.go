package dane_test

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/caliop/relay/dane"
)

func TestFromRR(t *testing.T) {
	t.Parallel()
	sha256Hex := strings.Repeat("ab", 32)
	sha512Hex := strings.Repeat("cd", 64)
	tests := []struct {
		name                          string
		usage, selector, matchingType uint8
		hex                           string
		wantErr                       bool // FromRR fails with ErrMalformed
		wantUsable                    bool
		wantString                    string
	}{
		// RFC 7672 §3.1.3: PKIX usages are unusable for SMTP.
		{"usage 0 PKIX-TA is unusable", 0, 1, 1, sha256Hex, false, false, "0 1 1 " + sha256Hex},
		{"usage 1 PKIX-EE is unusable", 1, 1, 1, sha256Hex, false, false, "1 1 1 " + sha256Hex},
		{"usage 2 DANE-TA is usable", 2, 1, 1, sha256Hex, false, true, "2 1 1 " + sha256Hex},
		{"usage 3 DANE-EE is usable", 3, 1, 1, sha256Hex, false, true, "3 1 1 " + sha256Hex},
		{"usage 4 unassigned is unusable", 4, 1, 1, sha256Hex, false, false, "4 1 1 " + sha256Hex},
		{"usage 255 PrivCert is unusable", 255, 1, 1, sha256Hex, false, false, "255 1 1 " + sha256Hex},
		// RFC 6698 §2.1.2: selectors 0 and 1.
		{"selector 0 Cert is usable", 3, 0, 1, sha256Hex, false, true, "3 0 1 " + sha256Hex},
		{"selector 1 SPKI is usable", 3, 1, 1, sha256Hex, false, true, "3 1 1 " + sha256Hex},
		{"selector 2 unassigned is unusable", 3, 2, 1, sha256Hex, false, false, "3 2 1 " + sha256Hex},
		// RFC 6698 §2.1.3: matching types 0, 1 and 2.
		{"matching 0 Full is usable", 3, 1, 0, "3059301306", false, true, "3 1 0 3059301306"},
		{"matching 1 SHA2-256 is usable", 3, 1, 1, sha256Hex, false, true, "3 1 1 " + sha256Hex},
		{"matching 2 SHA2-512 is usable", 3, 1, 2, sha512Hex, false, true, "3 1 2 " + sha512Hex},
		{"matching 3 unassigned is unusable", 3, 1, 3, sha256Hex, false, false, "3 1 3 " + sha256Hex},
		// RFC 6698 §2.1.3: a digest has its algorithm's length.
		{"matching 1 with 31 bytes is malformed", 3, 1, 1, sha256Hex[2:], true, false, "3 1 1 " + sha256Hex[2:]},
		{"matching 1 with 64 bytes is malformed", 3, 1, 1, sha512Hex, true, false, "3 1 1 " + sha512Hex},
		{"matching 2 with 32 bytes is malformed", 3, 1, 2, sha256Hex, true, false, "3 1 2 " + sha256Hex},
		{"matching 2 with 65 bytes is malformed", 3, 1, 2, sha512Hex + "00", true, false, "3 1 2 " + sha512Hex + "00"},
		{"matching 0 with no data is unusable", 3, 1, 0, "", false, false, "3 1 0"},
		{"bad hex is malformed", 3, 1, 1, "zz" + sha256Hex[2:], true, false, "3 1 1"},
		{"odd-length hex is malformed", 3, 1, 0, "abc", true, false, "3 1 0"},
		{"uppercase hex is accepted and shown lowercase", 2, 0, 1, strings.ToUpper(sha256Hex), false, true, "2 0 1 " + sha256Hex},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rr := &dns.TLSA{
				Hdr:   dns.RR_Header{Name: "_25._tcp.mx.example.org.", Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 300},
				Usage: tt.usage, Selector: tt.selector, MatchingType: tt.matchingType, Certificate: tt.hex,
			}
			got, err := dane.FromRR(rr)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("FromRR error = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, dane.ErrMalformed) {
				t.Errorf("FromRR error = %v, want ErrMalformed", err)
			}
			if got.Usage != tt.usage || got.Selector != tt.selector || got.MatchingType != tt.matchingType {
				t.Errorf("FromRR = %d %d %d, want %d %d %d", got.Usage, got.Selector, got.MatchingType, tt.usage, tt.selector, tt.matchingType)
			}
			if want, err := hex.DecodeString(tt.hex); err == nil && !bytes.Equal(got.Data, want) {
				t.Errorf("Data = %x, want %x", got.Data, want)
			}
			if u := got.Usable(); u != tt.wantUsable {
				t.Errorf("Usable() = %v, want %v", u, tt.wantUsable)
			}
			if s := got.String(); s != tt.wantString {
				t.Errorf("String() = %q, want %q", s, tt.wantString)
			}
		})
	}
}

func TestFromRRNil(t *testing.T) {
	t.Parallel()
	if _, err := dane.FromRR(nil); !errors.Is(err, dane.ErrMalformed) {
		t.Errorf("FromRR(nil) = %v, want ErrMalformed", err)
	}
}

// Match compares per selector and matching type, whatever the usage, so
// that a diagnostic can say which certificate a record names.
func TestMatch(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	leaf, inter := p.leaf.cert, p.inter.cert
	tests := []struct {
		name string
		rec  dane.TLSA
		cert *x509.Certificate
		want bool
	}{
		{"1 1 1 of the leaf matches the leaf", record(1, 1, 1, leaf), leaf, true},
		{"2 0 2 of the intermediate matches it", record(2, 0, 2, inter), inter, true},
		{"3 0 0 of the leaf matches the leaf", record(3, 0, 0, leaf), leaf, true},
		{"3 1 1 of the intermediate does not match the leaf", record(3, 1, 1, inter), leaf, false},
		{"selector 2 never matches", dane.TLSA{Usage: 3, Selector: 2, MatchingType: 0, Data: leaf.Raw}, leaf, false},
		{"matching type 3 never matches", dane.TLSA{Usage: 3, Selector: 0, MatchingType: 3, Data: leaf.Raw}, leaf, false},
		{"truncated digest does not match", dane.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: record(3, 1, 1, leaf).Data[:31]}, leaf, false},
		{"empty Full data does not match", dane.TLSA{Usage: 3, Selector: 1, MatchingType: 0}, leaf, false},
		{"no certificate does not match", record(3, 1, 1, leaf), nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := dane.Match(tt.rec, tt.cert); got != tt.want {
				t.Errorf("Match(%s) = %v, want %v", tt.rec, got, tt.want)
			}
		})
	}
}
