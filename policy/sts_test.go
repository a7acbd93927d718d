package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
)

// fakeSTS answers Lookup from a map; Refetch switches a domain to its
// "after" result, as if the fetched policy had changed.
type fakeSTS struct {
	res     map[string]stscache.Result
	after   map[string]stscache.Result
	lookups map[string]int
}

func (f *fakeSTS) Lookup(_ context.Context, d string) stscache.Result {
	f.lookups[d]++
	return f.res[d]
}

func (f *fakeSTS) Refetch(_ context.Context, d string) bool {
	r, ok := f.after[d]
	if ok {
		f.res[d] = r
		delete(f.after, d)
	}
	return ok
}

func stsResult(mode mtasts.Mode, source stscache.Source, mx ...string) stscache.Result {
	return stscache.Result{Policy: &mtasts.Policy{Mode: mode, MX: mx}, ID: "20260301", Source: source}
}

// TestPlanMTASTS is the MTA-STS part of the decision (RFC 8461 §5 and
// DESIGN.md precedence), one row per rule.
func TestPlanMTASTS(t *testing.T) {
	mx := func(hosts ...string) []resolver.MX {
		var out []resolver.MX
		for i, h := range hosts {
			out = append(out, resolver.MX{Host: h, Pref: uint16(10 * (i + 1))})
		}
		return out
	}
	dns := fakedns.New()
	dns.MX = map[string][]resolver.MX{
		"sts.example":           mx("mx1.sts.example", "mx2.sts.example"),
		"wild.example":          mx("a.wild.example", "b.c.wild.example", "wild.example"),
		"nomatch.example":       mx("mx.nomatch.example"),
		"moved.example":         mx("new.moved.example"),
		"testing.example":       mx("mx1.testing.example", "mx2.testing.example"),
		"partner.example":       mx("mx.partner.example"),
		"legacy.example":        mx("mx.legacy.example"),
		"required.example":      mx("mx.required.example"),
		"required-ok.example":   mx("mx.required-ok.example"),
		"required-test.example": mx("mx.required-test.example"),
		"cached.example":        mx("mx.cached.example"),
		"withdrawn.example":     mx("mx.withdrawn.example"),
		"storedown.example":     mx("mx.storedown.example"),
	}
	sts := &fakeSTS{
		lookups: map[string]int{},
		res: map[string]stscache.Result{
			"sts.example":           stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "mx2.sts.example"),
			"wild.example":          stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "*.wild.example"),
			"nomatch.example":       stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "mx.elsewhere.example"),
			"moved.example":         stsResult(mtasts.ModeEnforce, stscache.SourceCached, "old.moved.example"),
			"testing.example":       stsResult(mtasts.ModeTesting, stscache.SourceFetched, "mx2.testing.example"),
			"partner.example":       stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "mx.partner.example"),
			"legacy.example":        stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "mx.elsewhere.example"),
			"required.example":      {RecordErr: fmt.Errorf("%w: _mta-sts.required.example", mtasts.ErrNoRecord)},
			"required-ok.example":   stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "mx.required-ok.example"),
			"required-test.example": stsResult(mtasts.ModeTesting, stscache.SourceFetched, "mx.required-test.example"),
			"cached.example":        stsResult(mtasts.ModeEnforce, stscache.SourceCached, "mx.cached.example"),
			"withdrawn.example":     {Policy: &mtasts.Policy{Mode: mtasts.ModeNone}, Source: stscache.SourceFetched},
			"storedown.example":     {RecordErr: mtasts.ErrNoRecord, StoreErr: stscache.ErrStoreUnavailable},
		},
		after: map[string]stscache.Result{
			"moved.example": stsResult(mtasts.ModeEnforce, stscache.SourceFetched, "new.moved.example"),
		},
	}
	e := &Engine{
		DNS:         dns,
		Default:     encrypt12,
		Overrides:   map[string]Requirement{"partner.example": verify13, "legacy.example": none, "required.example": verify12, "required-ok.example": verify12, "required-test.example": verify12},
		STSRequired: map[string]bool{"required.example": true, "required-ok.example": true, "required-test.example": true},
		STS:         sts,
		Shuffle:     func(int, func(i, j int)) {},
	}
	policyOf := func(d string) *mtasts.Policy { return sts.res[d].Policy }
	tests := []struct {
		name   string
		domain string
		want   Plan
		err    error
	}{
		{"enforce: only admitted MX, WebPKI required, MX1 never tried", "sts.example",
			Plan{Domain: "sts.example", Source: SourceMTASTS, MXs: []MX{{Host: "mx2.sts.example", Pref: 20, Require: verify12}},
				STS: &STS{Policy: policyOf("sts.example"), ID: "20260301", Excluded: []string{"mx1.sts.example"}}}, nil},
		{"enforce: *. matches exactly one left-most label", "wild.example",
			Plan{Domain: "wild.example", Source: SourceMTASTS, MXs: []MX{{Host: "a.wild.example", Pref: 10, Require: verify12}},
				STS: &STS{Policy: policyOf("wild.example"), ID: "20260301", Excluded: []string{"b.c.wild.example", "wild.example"}}}, nil},
		{"enforce: no MX admitted, refetch changes nothing: temporary 4.7.x", "nomatch.example", Plan{}, ErrSTSNoMX},
		{"enforce: no MX admitted, refetched policy admits the new MX", "moved.example",
			Plan{Domain: "moved.example", Source: SourceMTASTS, MXs: []MX{{Host: "new.moved.example", Pref: 10, Require: verify12}},
				STS: &STS{Policy: &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"new.moved.example"}}, ID: "20260301"}}, nil},
		{"testing: every MX under the default, policy kept for reports", "testing.example",
			Plan{Domain: "testing.example", Source: SourceDefault, MXs: []MX{{Host: "mx1.testing.example", Pref: 10, Require: encrypt12}, {Host: "mx2.testing.example", Pref: 20, Require: encrypt12}},
				STS: &STS{Policy: policyOf("testing.example"), ID: "20260301", Excluded: []string{"mx1.testing.example"}}}, nil},
		{"override stricter than the policy keeps TLS 1.3 under enforce", "partner.example",
			Plan{Domain: "partner.example", Source: SourceMTASTS, MXs: []MX{{Host: "mx.partner.example", Pref: 10, Require: verify13}},
				STS: &STS{Policy: policyOf("partner.example"), ID: "20260301"}}, nil},
		{"override none skips MTA-STS (explicit plaintext)", "legacy.example",
			Plan{Domain: "legacy.example", Source: SourceOverride, MXs: []MX{{Host: "mx.legacy.example", Pref: 10, Require: none}}}, nil},
		{"level mta-sts without a policy: temporary 4.7.x", "required.example", Plan{}, ErrSTSRequired},
		{"level mta-sts with an enforced policy", "required-ok.example",
			Plan{Domain: "required-ok.example", Source: SourceMTASTS, MXs: []MX{{Host: "mx.required-ok.example", Pref: 10, Require: verify12}},
				STS: &STS{Policy: policyOf("required-ok.example"), ID: "20260301"}}, nil},
		{"level mta-sts with a testing policy: temporary 4.7.x", "required-test.example", Plan{}, ErrSTSRequired},
		{"cached policy while discovery fails is still enforced", "cached.example",
			Plan{Domain: "cached.example", Source: SourceMTASTS, MXs: []MX{{Host: "mx.cached.example", Pref: 10, Require: verify12}},
				STS: &STS{Policy: policyOf("cached.example"), ID: "20260301", Cached: true}}, nil},
		{"shared store unreadable: temporary, never the default", "storedown.example", Plan{}, ErrSTSUnavailable},
		{"mode none: as without a policy", "withdrawn.example",
			Plan{Domain: "withdrawn.example", Source: SourceDefault, MXs: []MX{{Host: "mx.withdrawn.example", Pref: 10, Require: encrypt12}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Plan(context.Background(), tc.domain)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan\n got %+v %+v\nwant %+v %+v", got, got.STS, tc.want, tc.want.STS)
			}
			if got.Enforced() != (tc.want.Source == SourceMTASTS) {
				t.Errorf("Enforced() = %v", got.Enforced())
			}
		})
	}
	if n := sts.lookups["legacy.example"]; n != 0 {
		t.Errorf("override none looked up MTA-STS %d times", n)
	}
}
