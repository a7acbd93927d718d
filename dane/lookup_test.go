package dane_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/caliop/relay/dane"
	"github.com/caliop/relay/resolver"
)

// answer is what fakeResolver returns for one name.
type answer struct {
	rrs []*dns.TLSA
	res resolver.Result
	err error
}

// fakeResolver answers TLSA queries from a map and records the names
// asked, in order. A name not in the map is a SERVFAIL.
type fakeResolver struct {
	answers map[string]answer
	mu      sync.Mutex
	asked   []string
}

func (f *fakeResolver) LookupTLSA(_ context.Context, name string) ([]*dns.TLSA, resolver.Result, error) {
	f.mu.Lock()
	f.asked = append(f.asked, name)
	f.mu.Unlock()
	a, ok := f.answers[name]
	if !ok {
		return nil, resolver.Result{}, fmt.Errorf("%w: TLSA %s: not scripted", resolver.ErrServFail, name)
	}
	return a.rrs, a.res, a.err
}

var _ dane.Resolver = (*fakeResolver)(nil)

// tlsaRR is a TLSA resource record at name.
func tlsaRR(name string, usage, selector, matching uint8, data string) *dns.TLSA {
	return &dns.TLSA{
		Hdr:   dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 300},
		Usage: usage, Selector: selector, MatchingType: matching, Certificate: data,
	}
}

func nxdomain(name string, authentic bool) answer {
	return answer{
		res: resolver.Result{Authentic: authentic},
		err: fmt.Errorf("%w: TLSA %s (from 127.0.0.1:53)", resolver.ErrNXDomain, name),
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	const (
		hostQ  = "_25._tcp.mx.example.org"
		canonQ = "_25._tcp.mail.provider.example"
	)
	digest := strings.Repeat("ab", 32)
	secure := resolver.Result{Authentic: true}
	rrHost := tlsaRR(hostQ, 3, 1, 1, digest)
	rrCanon := tlsaRR(canonQ, 2, 0, 1, digest)
	tlsaHost := dane.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: rrData(digest)}
	tlsaCanon := dane.TLSA{Usage: 2, Selector: 0, MatchingType: 1, Data: rrData(digest)}

	tests := []struct {
		name       string
		host       string
		canonical  string
		answers    map[string]answer
		wantErr    error
		want       dane.RRSet
		wantUsable int
		wantAsked  []string
	}{
		{name: "secure RRset",
			host: "mx.example.org", answers: map[string]answer{hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			want: dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{tlsaHost}, Secure: true}, wantUsable: 1,
			wantAsked: []string{hostQ}},
		{name: "host name in another case with a trailing dot",
			host: "MX.Example.ORG.", answers: map[string]answer{hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			want: dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{tlsaHost}, Secure: true}, wantUsable: 1,
			wantAsked: []string{hostQ}},
		{name: "insecure RRset: DANE does not apply and the records are dropped",
			host: "mx.example.org", answers: map[string]answer{hostQ: {rrs: []*dns.TLSA{rrHost}}},
			want: dane.RRSet{Name: "mx.example.org"}, wantAsked: []string{hostQ}},
		{name: "secure NXDOMAIN",
			host: "mx.example.org", answers: map[string]answer{hostQ: nxdomain(hostQ, true)},
			want: dane.RRSet{Name: "mx.example.org", Secure: true}, wantAsked: []string{hostQ}},
		{name: "insecure NXDOMAIN",
			host: "mx.example.org", answers: map[string]answer{hostQ: nxdomain(hostQ, false)},
			want: dane.RRSet{Name: "mx.example.org"}, wantAsked: []string{hostQ}},
		{name: "secure NODATA",
			host: "mx.example.org", answers: map[string]answer{hostQ: {res: secure}},
			want: dane.RRSet{Name: "mx.example.org", Secure: true}, wantAsked: []string{hostQ}},
		{name: "SERVFAIL",
			host: "mx.example.org", answers: map[string]answer{hostQ: {err: fmt.Errorf("%w: TLSA %s.: SERVFAIL from 127.0.0.1:53", resolver.ErrServFail, hostQ)}},
			wantErr: dane.ErrLookup, wantAsked: []string{hostQ}},
		{name: "timeout",
			host: "mx.example.org", answers: map[string]answer{hostQ: {err: fmt.Errorf("%w: TLSA %s.: i/o timeout", resolver.ErrTimeout, hostQ)}},
			wantErr: dane.ErrLookup, wantAsked: []string{hostQ}},
		{name: "records that do not parse are kept as unusable",
			host: "mx.example.org",
			answers: map[string]answer{hostQ: {res: secure, rrs: []*dns.TLSA{
				tlsaRR(hostQ, 3, 1, 1, "zz"), tlsaRR(hostQ, 3, 1, 2, digest), tlsaRR(hostQ, 1, 1, 1, digest), rrHost,
			}}},
			want: dane.RRSet{Name: "mx.example.org", Secure: true, Records: []dane.TLSA{
				{Usage: 3, Selector: 1, MatchingType: 1},
				{Usage: 3, Selector: 1, MatchingType: 2, Data: rrData(digest)},
				{Usage: 1, Selector: 1, MatchingType: 1, Data: rrData(digest)},
				tlsaHost,
			}}, wantUsable: 1, wantAsked: []string{hostQ}},
		// RFC 7672 §2.2.2, §2.2.3: the CNAME-expanded name first, then the host.
		{name: "canonical name with records: its name is the base domain",
			host: "mx.example.org", canonical: "mail.provider.example",
			answers: map[string]answer{canonQ: {rrs: []*dns.TLSA{rrCanon}, res: secure}, hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			want:    dane.RRSet{Name: "mail.provider.example", Records: []dane.TLSA{tlsaCanon}, Secure: true}, wantUsable: 1,
			wantAsked: []string{canonQ}},
		{name: "canonical name with secure NODATA, host with records",
			host: "mx.example.org", canonical: "mail.provider.example",
			answers: map[string]answer{canonQ: {res: secure}, hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			want:    dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{tlsaHost}, Secure: true}, wantUsable: 1,
			wantAsked: []string{canonQ, hostQ}},
		{name: "canonical name with secure NXDOMAIN, host with secure NODATA",
			host: "mx.example.org", canonical: "mail.provider.example",
			answers:   map[string]answer{canonQ: nxdomain(canonQ, true), hostQ: {res: secure}},
			want:      dane.RRSet{Name: "mx.example.org", Secure: true},
			wantAsked: []string{canonQ, hostQ}},
		{name: "canonical name with insecure records, host with records",
			host: "mx.example.org", canonical: "mail.provider.example",
			answers: map[string]answer{canonQ: {rrs: []*dns.TLSA{rrCanon}}, hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			want:    dane.RRSet{Name: "mx.example.org", Records: []dane.TLSA{tlsaHost}, Secure: true}, wantUsable: 1,
			wantAsked: []string{canonQ, hostQ}},
		{name: "canonical name SERVFAIL: the host is not asked",
			host: "mx.example.org", canonical: "mail.provider.example",
			answers: map[string]answer{canonQ: {err: fmt.Errorf("%w: TLSA %s.: SERVFAIL", resolver.ErrServFail, canonQ)}, hostQ: {rrs: []*dns.TLSA{rrHost}, res: secure}},
			wantErr: dane.ErrLookup, wantAsked: []string{canonQ}},
		{name: "canonical name equal to the host is asked once",
			host: "mx.example.org", canonical: "MX.example.org.",
			answers: map[string]answer{hostQ: {res: secure}},
			want:    dane.RRSet{Name: "mx.example.org", Secure: true}, wantAsked: []string{hostQ}},
		{name: "empty host",
			host: "", wantErr: dane.ErrLookup, wantAsked: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &fakeResolver{answers: tt.answers}
			got, err := dane.Lookup(context.Background(), r, tt.host, tt.canonical)
			if !slices.Equal(r.asked, tt.wantAsked) {
				t.Errorf("asked %q, want %q", r.asked, tt.wantAsked)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Lookup error = %v, want %v", err, tt.wantErr)
				}
				if len(tt.wantAsked) > 0 && !strings.Contains(err.Error(), tt.wantAsked[len(tt.wantAsked)-1]) {
					t.Errorf("error %q does not name the query %s", err, tt.wantAsked[len(tt.wantAsked)-1])
				}
				if got.Name != "" || got.Secure || got.Records != nil {
					t.Errorf("Lookup = %+v with an error, want the zero RRSet", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Lookup error = %v", err)
			}
			if got.Name != tt.want.Name || got.Secure != tt.want.Secure {
				t.Errorf("Lookup = {Name: %q, Secure: %v}, want {Name: %q, Secure: %v}", got.Name, got.Secure, tt.want.Name, tt.want.Secure)
			}
			if !slices.EqualFunc(got.Records, tt.want.Records, equalTLSA) {
				t.Errorf("Records = %v, want %v", got.Records, tt.want.Records)
			}
			if n := len(got.Usable()); n != tt.wantUsable {
				t.Errorf("len(Usable()) = %d, want %d", n, tt.wantUsable)
			}
		})
	}
}

// rrData decodes hex that the test wrote.
func rrData(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic(err)
	}
	return b
}

func equalTLSA(a, b dane.TLSA) bool {
	return a.Usage == b.Usage && a.Selector == b.Selector && a.MatchingType == b.MatchingType && string(a.Data) == string(b.Data)
}
