package resolver_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/resolver"
)

// testTimeout is the per-attempt timeout in tests.
const testTimeout = 200 * time.Millisecond

func newResolver(t testing.TB, servers ...string) *resolver.Resolver {
	t.Helper()
	r, err := resolver.New(resolver.Config{Servers: servers, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// zone is shared test data; rules are added per test.
func zone(s *dnstest.Server) {
	s.Add(
		"example.test. 300 IN MX 20 MX2.Example.Test.",
		"example.test. 300 IN MX 10 mx1.example.test.",
		"example.test. 300 IN MX 20 mxb.example.test.",
		"example.test. 300 IN TXT \"v=spf1 \" \"ip4:192.0.2.0/24 \" \"-all\"",
		"example.test. 300 IN TXT \"hello\"",
		"nullmx.test. 300 IN MX 0 .",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"mx1.example.test. 300 IN A 192.0.2.2",
		"mx1.example.test. 300 IN A 192.0.2.1",
		"mx1.example.test. 300 IN AAAA 2001:db8::1",
		"mx1.example.test. 300 IN AAAA 2001:db8::1",
		"v4only.test. 300 IN A 192.0.2.4",
		"v6only.test. 300 IN AAAA 2001:db8::6",
		"alias.test. 300 IN CNAME Mid.Test.",
		"mid.test. 300 IN CNAME mx1.example.test.",
		"mailalias.test. 300 IN CNAME example.test.",
	)
}

func TestLookupMX(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.SetRcode("fail.test", dns.TypeMX, dns.RcodeServerFailure)
	s.SetRcode("refused.test", dns.TypeMX, dns.RcodeRefused)
	s.Drop("slow.test", dns.TypeMX)
	r := newResolver(t, s.Addr)

	sorted := []resolver.MX{{"mx1.example.test", 10}, {"mx2.example.test", 20}, {"mxb.example.test", 20}}
	tests := []struct {
		domain  string
		want    []resolver.MX
		wantErr error
	}{
		{"example.test", sorted, nil},
		{"EXAMPLE.Test.", sorted, nil},
		{"mailalias.test", sorted, nil},
		{"nullmx.test", []resolver.MX{{".", 0}}, nil},
		{"mx1.example.test", nil, nil}, // NODATA
		{"nx.test", nil, resolver.ErrNXDomain},
		{"fail.test", nil, resolver.ErrServFail},
		{"refused.test", nil, resolver.ErrServFail},
		{"slow.test", nil, resolver.ErrTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			t.Parallel()
			got, _, err := r.LookupMX(context.Background(), tc.domain)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for _, other := range []error{resolver.ErrNXDomain, resolver.ErrServFail, resolver.ErrTimeout} {
				if other != tc.wantErr && errors.Is(err, other) {
					t.Errorf("err = %v also matches %v", err, other)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("MX = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.SetRcode("fail.test", dns.TypeMX, dns.RcodeServerFailure)
	s.Drop("slow.test", dns.TypeTXT)
	r := newResolver(t, s.Addr)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"nxdomain", func() error { _, _, err := r.LookupMX(context.Background(), "NX.test."); return err },
			"dns name does not exist: MX nx.test (from " + s.Addr + ")"},
		{"servfail", func() error { _, _, err := r.LookupMX(context.Background(), "fail.test"); return err },
			"dns server failure: MX fail.test: SERVFAIL from " + s.Addr},
		{"timeout", func() error { _, _, err := r.LookupTXT(context.Background(), "slow.test"); return err },
			"dns timeout: TXT slow.test: no answer from " + s.Addr + " within 200ms: "},
		{"empty name", func() error { _, _, err := r.LookupIP(context.Background(), ""); return err },
			"resolver: empty name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.call()
			if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
				t.Errorf("err = %v\nwant prefix %q", err, tc.want)
			}
		})
	}
}

func TestLookupTXT(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	r := newResolver(t, s.Addr)
	got, _, err := r.LookupTXT(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v=spf1 ip4:192.0.2.0/24 -all", "hello"}
	if !slices.Equal(got, want) {
		t.Errorf("TXT = %q, want %q", got, want)
	}
}

func TestLookupIP(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.Add(
		"halfbroken.test. 300 IN A 192.0.2.7",
		"halfbroken.test. 300 IN AAAA 2001:db8::7",
		"halfslow.test. 300 IN A 192.0.2.8",
		"halfslow.test. 300 IN AAAA 2001:db8::8",
		"halfnx.test. 300 IN A 192.0.2.9",
		"nxfail.test. 300 IN A 192.0.2.10",
	)
	s.SetRcode("halfbroken.test", dns.TypeAAAA, dns.RcodeServerFailure)
	s.Drop("halfslow.test", dns.TypeA)
	s.SetRcode("halfnx.test", dns.TypeAAAA, dns.RcodeNameError)
	s.SetRcode("nxfail.test", dns.TypeA, dns.RcodeServerFailure)
	s.SetRcode("nxfail.test", dns.TypeAAAA, dns.RcodeNameError)
	r := newResolver(t, s.Addr)

	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		name    string
		host    string
		want    []netip.Addr
		wantErr error
	}{
		{"v4 first, deduplicated", "mx1.example.test", addrs("192.0.2.1", "192.0.2.2", "2001:db8::1"), nil},
		{"v4 only", "v4only.test.", addrs("192.0.2.4"), nil},
		{"v6 only", "V6ONLY.test", addrs("2001:db8::6"), nil},
		{"cname chain", "alias.test", addrs("192.0.2.1", "192.0.2.2", "2001:db8::1"), nil},
		{"both nodata", "example.test", nil, nil},
		{"nxdomain", "nx.test", nil, resolver.ErrNXDomain},
		{"AAAA servfail, A answered", "halfbroken.test", nil, resolver.ErrServFail},
		{"A timeout, AAAA answered", "halfslow.test", nil, resolver.ErrTimeout},
		{"AAAA nxdomain, A answered", "halfnx.test", nil, resolver.ErrNXDomain},
		{"nxdomain wins over servfail", "nxfail.test", nil, resolver.ErrNXDomain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := r.LookupIP(context.Background(), tc.host)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("addrs = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAuthentic checks that Result.Authentic follows the AD bit of a
// loopback server, across CNAME chains and both address families.
func TestAuthentic(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.SetAuthentic("example.test", true)
	s.SetAuthentic("mx1.example.test", true)
	s.SetAuthentic("alias.test", true)
	s.SetAuthentic("nx.test", true)
	r := newResolver(t, s.Addr)
	ctx := context.Background()

	tests := []struct {
		name   string
		lookup func() (resolver.Result, error)
		want   bool
	}{
		{"MX signed", func() (resolver.Result, error) { _, res, err := r.LookupMX(ctx, "example.test"); return res, err }, true},
		{"MX unsigned", func() (resolver.Result, error) { _, res, err := r.LookupMX(ctx, "nullmx.test"); return res, err }, false},
		{"TXT signed", func() (resolver.Result, error) { _, res, err := r.LookupTXT(ctx, "example.test"); return res, err }, true},
		{"IP both families signed", func() (resolver.Result, error) { _, res, err := r.LookupIP(ctx, "mx1.example.test"); return res, err }, true},
		{"IP unsigned", func() (resolver.Result, error) { _, res, err := r.LookupIP(ctx, "v4only.test"); return res, err }, false},
		{"chain with unsigned link", func() (resolver.Result, error) { _, res, err := r.LookupIP(ctx, "alias.test"); return res, err }, false},
		{"MX via unsigned alias", func() (resolver.Result, error) { _, res, err := r.LookupMX(ctx, "mailalias.test"); return res, err }, false},
		{"signed NXDOMAIN", func() (resolver.Result, error) {
			_, res, err := r.LookupMX(ctx, "nx.test")
			if errors.Is(err, resolver.ErrNXDomain) {
				err = nil
			}
			return res, err
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res, err := tc.lookup()
			if err != nil {
				t.Fatal(err)
			}
			if res.Authentic != tc.want {
				t.Errorf("Authentic = %v, want %v", res.Authentic, tc.want)
			}
		})
	}
}

// deadAddr returns a loopback UDP address on which nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

func TestFailover(t *testing.T) {
	t.Parallel()
	good := dnstest.Start(t)
	zone(good)
	good.SetAuthenticAll(true)
	failing := dnstest.Start(t)
	zone(failing)
	failing.SetRcode("example.test", dns.TypeMX, dns.RcodeServerFailure)
	silent := dnstest.Start(t)
	silent.Drop("example.test", dns.TypeMX)
	nx := dnstest.Start(t) // no data: NXDOMAIN for everything
	dead := deadAddr(t)

	tests := []struct {
		name    string
		servers []string
		want    []resolver.MX
		wantErr error
		auth    bool
		asked   []*dnstest.Server // each saw the query once
	}{
		{"first servfails", []string{failing.Addr, good.Addr}, []resolver.MX{{"mx1.example.test", 10}, {"mx2.example.test", 20}, {"mxb.example.test", 20}}, nil, true, []*dnstest.Server{failing, good}},
		{"first drops", []string{silent.Addr, good.Addr}, []resolver.MX{{"mx1.example.test", 10}, {"mx2.example.test", 20}, {"mxb.example.test", 20}}, nil, true, []*dnstest.Server{silent, good}},
		{"first unreachable", []string{dead, good.Addr}, []resolver.MX{{"mx1.example.test", 10}, {"mx2.example.test", 20}, {"mxb.example.test", 20}}, nil, true, []*dnstest.Server{good}},
		{"nxdomain is final", []string{nx.Addr, good.Addr}, nil, resolver.ErrNXDomain, false, []*dnstest.Server{nx}},
		{"all servfail", []string{failing.Addr, failing.Addr}, nil, resolver.ErrServFail, false, []*dnstest.Server{failing, failing}},
		{"all silent", []string{silent.Addr, silent.Addr}, nil, resolver.ErrTimeout, false, []*dnstest.Server{silent, silent}},
		{"servfail and silent", []string{failing.Addr, silent.Addr}, nil, resolver.ErrServFail, false, []*dnstest.Server{failing, silent}},
		{"unreachable only", []string{dead}, nil, resolver.ErrServFail, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the servers' query logs are shared.
			before := map[*dnstest.Server]int{}
			for _, s := range []*dnstest.Server{good, failing, silent, nx} {
				before[s] = len(s.Queries())
			}
			r := newResolver(t, tc.servers...)
			got, res, err := r.LookupMX(context.Background(), "example.test")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("MX = %v, want %v", got, tc.want)
			}
			if res.Authentic != tc.auth {
				t.Errorf("Authentic = %v, want %v", res.Authentic, tc.auth)
			}
			wantAsked := map[*dnstest.Server]int{}
			for _, s := range tc.asked {
				wantAsked[s]++
			}
			for s, n := range before {
				if got := len(s.Queries()) - n; got != wantAsked[s] {
					t.Errorf("server %s got %d queries, want %d", s.Addr, got, wantAsked[s])
				}
			}
		})
	}
}

func TestTruncatedRetriesTCP(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.Truncate(true)
	r := newResolver(t, s.Addr)
	got, _, err := r.LookupTXT(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v=spf1 ip4:192.0.2.0/24 -all", "hello"}; !slices.Equal(got, want) {
		t.Errorf("TXT = %q, want %q", got, want)
	}
	q := dns.Question{Name: "example.test.", Qtype: dns.TypeTXT, Qclass: dns.ClassINET}
	if qs := s.Queries(); !slices.Equal(qs, []dns.Question{q, q}) {
		t.Errorf("server saw %v, want the question twice (UDP then TCP)", qs)
	}
}

func TestQueryIsFQDNWithDO(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.SetAuthenticAll(true) // dnstest sets AD only when the query has DO or AD
	r := newResolver(t, s.Addr)
	_, res, err := r.LookupMX(context.Background(), "Example.TEST")
	if err != nil {
		t.Fatal(err)
	}
	if !res.Authentic {
		t.Error("Authentic = false; was DO sent?")
	}
	want := []dns.Question{{Name: "example.test.", Qtype: dns.TypeMX, Qclass: dns.ClassINET}}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Errorf("queries = %v, want %v", got, want)
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Drop("slow.test", dns.TypeMX)
	r, err := resolver.New(resolver.Config{Servers: []string{s.Addr, s.Addr}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantCtx error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		}, context.DeadlineExceeded},
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"already cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			_, _, err := r.LookupMX(ctx, "slow.test")
			if !errors.Is(err, resolver.ErrTimeout) || !errors.Is(err, tc.wantCtx) {
				t.Errorf("err = %v, want ErrTimeout and %v", err, tc.wantCtx)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v; the context was not obeyed", d)
			}
		})
	}
}

func TestExchange(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add("_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	s.SetAuthenticAll(true)
	r := newResolver(t, s.Addr)

	m, res, err := r.Exchange(context.Background(), "_25._tcp.MX1.example.test", dns.TypeTLSA)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Answer) != 1 || m.Answer[0].(*dns.TLSA).Usage != 3 || !res.Authentic {
		t.Errorf("answer = %v, authentic %v", m.Answer, res.Authentic)
	}

	m, res, err = r.Exchange(context.Background(), "_25._tcp.mx2.example.test", dns.TypeTLSA)
	if !errors.Is(err, resolver.ErrNXDomain) || m == nil || m.Rcode != dns.RcodeNameError || !res.Authentic {
		t.Errorf("NXDOMAIN: msg %v, authentic %v, err %v; want the message, authentic denial and ErrNXDomain", m, res.Authentic, err)
	}
}

// TestCanonicalAndTLSA checks the canonical name reported after a CNAME
// chain (DANE's TLSA base domain, RFC 7672 §2.2.2) and LookupTLSA,
// including an authenticated denial.
func TestCanonicalAndTLSA(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	zone(s)
	s.Add(
		"_25._tcp.mx1.example.test. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"_25._tcp.alias.test. 300 IN CNAME _25._tcp.mx1.example.test.",
	)
	s.SetAuthenticAll(true)
	r := newResolver(t, s.Addr)
	ctx := context.Background()

	_, res, err := r.LookupIP(ctx, "Alias.Test")
	if err != nil || res.Canonical != "mx1.example.test" || !res.Authentic {
		t.Errorf("LookupIP(alias) = %+v, %v; want canonical mx1.example.test", res, err)
	}
	if _, res, _ := r.LookupIP(ctx, "mx1.example.test"); res.Canonical != "" {
		t.Errorf("LookupIP without a chain: canonical %q, want empty", res.Canonical)
	}
	for _, name := range []string{"_25._tcp.mx1.example.test", "_25._tcp.alias.test"} {
		rrs, res, err := r.LookupTLSA(ctx, name)
		if err != nil || len(rrs) != 1 || rrs[0].Usage != 3 || rrs[0].Selector != 1 || rrs[0].MatchingType != 1 || !res.Authentic {
			t.Errorf("LookupTLSA(%s) = %v, %+v, %v", name, rrs, res, err)
		}
	}
	rrs, res, err := r.LookupTLSA(ctx, "_25._tcp.nothere.test")
	if !errors.Is(err, resolver.ErrNXDomain) || len(rrs) != 0 || !res.Authentic {
		t.Errorf("LookupTLSA(missing) = %v, %+v, %v; want an authenticated NXDOMAIN", rrs, res, err)
	}
}

// TestHasAddress: A first; AAAA only after an A NODATA; NXDOMAIN and
// NODATA are no address; a failure is an error.
func TestHasAddress(t *testing.T) {
	t.Parallel()
	s := dnstest.Start(t)
	s.Add(
		"test. 3600 IN SOA ns.test. host.test. 1 3600 600 86400 300",
		"v4.test. 300 IN A 192.0.2.1",
		"v6.test. 300 IN AAAA 2001:db8::1",
		"mx-only.test. 300 IN MX 10 mx.test.",
	)
	s.SetRcode("broken.test", dns.TypeA, dns.RcodeServerFailure)
	r := newResolver(t, s.Addr)
	for _, tc := range []struct {
		host      string
		want      bool
		wantErr   bool
		aaaaAsked bool
	}{
		{"v4.test", true, false, false},
		{"v6.test", true, false, true},
		{"mx-only.test", false, false, true},
		{"absent.test", false, false, false}, // NXDOMAIN: nothing to ask AAAA about
		{"broken.test", false, true, false},
	} {
		got, err := r.HasAddress(context.Background(), tc.host)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("HasAddress(%s) = %v, %v; want %v, error %v", tc.host, got, err, tc.want, tc.wantErr)
		}
		if asked := queriesFor(s, tc.host, dns.TypeAAAA) > 0; asked != tc.aaaaAsked {
			t.Errorf("HasAddress(%s): AAAA asked %v, want %v", tc.host, asked, tc.aaaaAsked)
		}
	}
}
