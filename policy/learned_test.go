package policy

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/fakedns"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
)

type learnedTable map[string]learned.Record

func (l learnedTable) Lookup(d string) (learned.Record, bool) { r, ok := l[d]; return r, ok }

// TestPlanLearned is the learned part of the decision, one row per rule
// (README, Learned policies).
func TestPlanLearned(t *testing.T) {
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	verify := learned.Record{Domain: "d.test", MX: []string{"mx.d.test"}, Requirement: learned.Verify, Since: now.AddDate(0, 0, -30)}
	daneRec := verify
	daneRec.Requirement = learned.DANE
	tests := []struct {
		name     string
		rec      *learned.Record
		enforce  bool
		mx       string
		override bool
		none     bool // the override is level none
		sts      bool
		dane     bool   // the MX has usable, secure TLSA records
		want     string // the MX's requirement, or the error
		err      error
	}{
		{name: "nothing learned: the default", mx: "mx.d.test", want: "encrypt,tls>=1.2"},
		{name: "learned verify, report: the plan is only marked", rec: &verify, mx: "mx.d.test", want: "encrypt,tls>=1.2"},
		{name: "learned verify, enforce: a WebPKI-valid certificate", rec: &verify, enforce: true, mx: "mx.d.test", want: "verify,tls>=1.2"},
		{name: "learned verify, enforce, a new MX under the learned registrable domain", rec: &verify, enforce: true, mx: "mx2.d.test", want: "verify,tls>=1.2"},
		{name: "learned verify, enforce, MX moved elsewhere", rec: &verify, enforce: true, mx: "mx.elsewhere.test", err: ErrLearned},
		{name: "learned dane, enforce, no usable TLSA any more", rec: &daneRec, enforce: true, mx: "mx.d.test", err: ErrLearned},
		{name: "a local override wins", rec: &verify, enforce: true, mx: "mx.elsewhere.test", override: true, want: "encrypt,tls>=1.2"},
		{name: "an enforced MTA-STS policy is stronger", rec: &verify, enforce: true, mx: "mx.elsewhere.test", sts: true, want: "verify,tls>=1.2"},
		{name: "level none disables it", rec: &verify, enforce: true, mx: "mx.d.test", override: true, none: true, want: "none"},
		{name: "an MX with usable TLSA records is DANE's, even outside the learned names", rec: &verify, enforce: true, mx: "mx.elsewhere.test", dane: true, want: "dane,tls>=1.2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dns := fakedns.New()
			dns.MX["d.test"] = []resolver.MX{{Host: tc.mx, Pref: 10}}
			e := &Engine{DNS: dns, Default: encrypt12, LearnEnforce: tc.enforce, Now: func() time.Time { return now }}
			table := learnedTable{}
			if tc.rec != nil {
				table["d.test"] = *tc.rec
			}
			e.Learned = table
			if tc.override {
				e.Overrides = map[string]Requirement{"d.test": encrypt12}
				if tc.none {
					e.Overrides["d.test"] = none
				}
			}
			if tc.dane {
				dns.Secure = true
				dns.IP[tc.mx] = []netip.Addr{netip.MustParseAddr("192.0.2.1")}
				dns.TLSA["_25._tcp."+tc.mx] = tlsa(ee)
				e.TLSA = dns
			}
			if tc.sts {
				pol := &mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{tc.mx}, Text: "x"}
				e.STS = &fakeSTS{res: map[string]stscache.Result{"d.test": {Policy: pol, ID: "1"}}, lookups: map[string]int{}}
			}
			p, err := e.Plan(context.Background(), "d.test")
			if tc.err != nil || err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if got := p.MXs[0].Require.String(); got != tc.want {
				t.Errorf("requirement %s, want %s", got, tc.want)
			}
			if marked := p.Learned != nil; marked != (tc.rec != nil && !tc.override && !tc.sts) {
				t.Errorf("plan marked learned: %v", marked)
			}
		})
	}
}
