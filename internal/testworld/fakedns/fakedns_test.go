package fakedns

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/caliop/relay/resolver"
)

// TestAnswers: the DNS's own distinctions, as the components see them.
func TestAnswers(t *testing.T) {
	ctx := context.Background()
	r := New()
	r.Secure = true
	r.MX["d.test"] = []resolver.MX{{Host: "mx.d.test", Pref: 10}}
	r.IP["mx.d.test"] = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	r.Insecure["mx.d.test"] = true
	r.Canonical["mx.d.test"] = "real.d.test"
	servfail := errors.New("servfail")
	r.Errs["TXT d.test"] = servfail

	if mx, res, err := r.LookupMX(ctx, "D.test."); err != nil || len(mx) != 1 || !res.Authentic {
		t.Errorf("MX d.test: %v %+v %v, want one authentic record", mx, res, err)
	}
	if ip, res, err := r.LookupIP(ctx, "mx.d.test"); err != nil || len(ip) != 1 || res.Authentic || res.Canonical != "real.d.test" {
		t.Errorf("IP mx.d.test: %v %+v %v, want one insecure record via real.d.test", ip, res, err)
	}
	if ip, _, err := r.LookupIP(ctx, "d.test"); err != nil || len(ip) != 0 {
		t.Errorf("IP d.test: %v %v, want NODATA (the name has an MX)", ip, err)
	}
	if _, res, err := r.LookupTLSA(ctx, "_25._tcp.mx.d.test"); !errors.Is(err, resolver.ErrNXDomain) || !res.Authentic {
		t.Errorf("TLSA of a name without records: %+v %v, want an authentic NXDOMAIN", res, err)
	}
	if _, _, err := r.LookupTXT(ctx, "d.test"); err != servfail {
		t.Errorf("TXT d.test: %v, want the scripted error", err)
	}
	r.Unknown = func(qtype, name string) error { return resolver.ErrServFail }
	if _, _, err := r.LookupMX(ctx, "other.test"); !errors.Is(err, resolver.ErrServFail) {
		t.Errorf("MX of an unknown name with Unknown set: %v, want SERVFAIL", err)
	}
	r.SetErr(resolver.ErrTimeout)
	if _, _, err := r.LookupMX(ctx, "d.test"); !errors.Is(err, resolver.ErrTimeout) {
		t.Errorf("after SetErr: %v", err)
	}
	if n := r.Count("MX", "d.test"); n != 2 {
		t.Errorf("Count(MX d.test) = %d, want 2", n)
	}
}
