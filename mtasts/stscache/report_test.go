package stscache

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/mtasts"
	"github.com/caliop/relay/resolver"
)

func TestWriteReport(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p, err := mtasts.ParsePolicy([]byte("version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 86400\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := Result{Domain: "example.test", Record: "v=STSv1; id=7", Policy: p, ID: "7", Source: SourceCached,
		Fetched: now.Add(-time.Hour), Expires: now.Add(23 * time.Hour),
		FetchErr: errors.New("mta-sts policy fetch failed: timeout"), Failure: "sts-policy-fetch-error"}
	var b strings.Builder
	WriteReport(&b, r, []resolver.MX{{Host: "mx1.example.test", Pref: 10}, {Host: "mx.other.test", Pref: 20}}, nil, now)
	out := b.String()
	for _, want := range []string{
		"record:  v=STSv1; id=7\n",
		"fetch:   failed, sts-policy-fetch-error: mta-sts policy fetch failed: timeout\n",
		"policy:  id 7, mode enforce, max_age 86400 s\n",
		"source:  cached, fetched 2026-03-01T11:00:00Z\n",
		"expires: 2026-03-02T11:00:00Z (in 23h0m0s)\n",
		"mx1.example.test                         admitted\n",
		"mx.other.test                            NOT admitted\n",
		"  mx: *.example.test\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	b.Reset()
	WriteReport(&b, Result{Domain: "plain.test", RecordErr: mtasts.ErrNoRecord}, nil, errors.New("SERVFAIL"), now)
	if out := b.String(); !strings.Contains(out, "record:  none (mta-sts: no record)") || !strings.Contains(out, "policy:  none in force") || !strings.Contains(out, "mx:      lookup failed: SERVFAIL") {
		t.Errorf("no-policy report:\n%s", out)
	}
}
