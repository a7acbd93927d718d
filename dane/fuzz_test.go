package dane

import (
	"errors"
	"testing"

	"github.com/miekg/dns"
)

// FuzzTLSA: any TLSA RR in DNS wire form either fails to unpack (miekg)
// or converts; a record that converts with an error wraps ErrMalformed
// and is never usable, and a digest record has exactly one digest.
// Longer runs: go test ./dane -run XXX -fuzz FuzzTLSA
func FuzzTLSA(f *testing.F) {
	for _, s := range []string{
		"_25._tcp.mx.example. 300 IN TLSA 3 1 1 8d02536c887482bc34ff54e41d2ba659bf85b341a0a20afadb5813dcfbcf286d",
		"_25._tcp.mx.example. 300 IN TLSA 2 0 2 " + "ab00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
		"_25._tcp.mx.example. 300 IN TLSA 3 1 1 8d02",
		"_25._tcp.mx.example. 300 IN TLSA 0 0 0 00",
		"_25._tcp.mx.example. 300 IN TLSA 3 1 0 3059301306072a8648ce3d020106082a8648ce3d03010703420004",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			f.Fatal(err)
		}
		buf := make([]byte, dns.Len(rr)+16)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf[:n])
	}
	f.Fuzz(func(t *testing.T, wire []byte) {
		rr, _, err := dns.UnpackRR(wire, 0)
		if err != nil {
			return
		}
		tr, ok := rr.(*dns.TLSA)
		if !ok {
			return
		}
		r, err := FromRR(tr)
		_ = r.String()
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("FromRR(%v): %v does not wrap ErrMalformed", tr, err)
			}
			if r.Usable() {
				t.Fatalf("malformed record %v is usable", tr)
			}
			return
		}
		if want := digestLen(r.MatchingType); want > 0 && len(r.Data) != want {
			t.Fatalf("%v: %d bytes for matching type %d", tr, len(r.Data), r.MatchingType)
		}
	})
}
