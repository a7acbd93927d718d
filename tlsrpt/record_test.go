package tlsrpt

import (
	"sync"
	"testing"
)

func TestTally(t *testing.T) {
	t.Parallel()
	var tl Tally
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { tl.Record(Outcome{Domain: "a.test", Policy: PolicySTS, MX: "mx.a.test", Success: true}) })
	}
	wg.Wait()
	tl.Record(Outcome{Domain: "a.test", Policy: PolicySTS, MX: "mx2.a.test", Result: CertificateExpired, Detail: "x"})
	tl.Record(Outcome{Domain: "a.test", Policy: PolicySTS, MX: "mx2.a.test", Result: CertificateExpired, Detail: "y"})
	tl.Record(Outcome{Domain: "b.test", Policy: PolicyNone, Result: STSPolicyFetchError})
	if n := tl.Successes("a.test"); n != 10 {
		t.Errorf("successes = %d, want 10", n)
	}
	if n := tl.Failures("a.test", CertificateExpired); n != 2 {
		t.Errorf("expired = %d, want 2", n)
	}
	if n := tl.Failures("b.test", STSPolicyFetchError); n != 1 {
		t.Errorf("fetch errors for b.test = %d, want 1", n)
	}
	all := tl.Counts("")
	if len(all) != 3 || all[0].Domain != "a.test" || all[2].Domain != "b.test" {
		t.Errorf("Counts = %+v", all)
	}
}
