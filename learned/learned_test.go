package learned

import (
	"fmt"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/store"
)

func newLearner(t *testing.T, st Store, clock *fakeclock.Clock) *Learner {
	t.Helper()
	return New(Config{Store: st, Now: clock.Now, Exclude: []string{"never.test", ".bulk.test"}})
}

// deliver counts n sessions to mx, one a day apart when spread.
func deliver(l *Learner, clock *fakeclock.Clock, domain, mx string, n int, step time.Duration, authenticated, dane bool) {
	for range n {
		l.Observe(domain, mx, authenticated, dane)
		clock.Advance(step)
	}
}

// TestPromotion: 20 authenticated sessions over 7 days promote the
// domain; the store keeps it across a restart; it lapses 60 days after
// the last authenticated delivery.
func TestPromotion(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	l := newLearner(t, st, clock)
	deliver(l, clock, "Example.TEST.", "mx1.mail.example.test", 19, 9*time.Hour, true, false)
	l.Flush()
	l.Reload()
	if _, ok := l.Lookup("example.test"); ok {
		t.Fatal("promoted after 19 sessions over 7 days")
	}
	deliver(l, clock, "example.test", "mx1.mail.example.test", 1, time.Hour, true, false)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	r, ok := l.Lookup("example.test")
	if !ok || r.Requirement != Verify || r.Sessions != 20 || r.MX[0] != "mx1.mail.example.test" {
		t.Fatalf("after 20 sessions over 7 days: %+v %v, want verify", r, ok)
	}
	restarted := newLearner(t, st, clock)
	if err := restarted.Reload(); err != nil {
		t.Fatal(err)
	}
	if r, ok := restarted.Lookup("example.test"); !ok || r.Requirement != Verify {
		t.Fatalf("after a restart: %+v %v", r, ok)
	}
	clock.Advance(DefaultRules.MaxAge)
	if err := restarted.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := restarted.Lookup("example.test"); ok {
		t.Error("still in force 60 days after the last authenticated delivery")
	}
	if rs, _ := List(st); len(rs) != 0 {
		t.Errorf("lapsed record kept: %+v", rs)
	}
}

// TestNoPromotion: too quick, an encrypted-only session lately, an
// excluded domain; and DANE on every session learns "dane".
func TestNoPromotion(t *testing.T) {
	st, _ := store.Open(t.TempDir())
	clock := fakeclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	l := newLearner(t, st, clock)
	for _, c := range []struct {
		domain      string
		n           int
		step        time.Duration
		dane, plain bool // plain: an encrypted-only session last
	}{
		{"quick.test", 100, time.Minute, false, false},
		{"mixed.test", 30, 8 * time.Hour, false, true},
		{"never.test", 30, 8 * time.Hour, false, false},
		{"a.bulk.test", 30, 8 * time.Hour, false, false},
		{"dane.test", 30, 8 * time.Hour, true, false},
	} {
		deliver(l, clock, c.domain, "mx."+c.domain, c.n, c.step, true, c.dane)
		if c.plain {
			l.Observe(c.domain, "mx."+c.domain, false, false)
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	l.Reload()
	for _, d := range []string{"quick.test", "mixed.test", "never.test", "a.bulk.test"} {
		if r, ok := l.Lookup(d); ok {
			t.Errorf("%s promoted: %+v", d, r)
		}
	}
	if r, ok := l.Lookup("dane.test"); !ok || r.Requirement != DANE {
		t.Errorf("dane.test: %+v %v, want dane", r, ok)
	}
	if err := Forget(st, "dane.test"); err != nil {
		t.Fatal(err)
	}
	l.Reload()
	if _, ok := l.Lookup("dane.test"); ok {
		t.Error("forgotten, still in force")
	}
}

func TestAdmits(t *testing.T) {
	r := Record{MX: []string{"mx1.mail.example.co.uk", "aspmx.l.google.com"}}
	for host, want := range map[string]bool{
		"mx1.mail.example.co.uk":  true,
		"MX2.mail.example.co.uk.": true,  // same registrable domain
		"new.example.co.uk":       true,  // ditto
		"mx.attacker.co.uk":       false, // another registrable domain under the same suffix
		"alt1.aspmx.l.google.com": true,
		"mx.evil.test":            false,
	} {
		if got := r.Admits(host); got != want {
			t.Errorf("Admits(%s) = %v, want %v", host, got, want)
		}
	}
}

// countingStore counts the store's write calls.
type countingStore struct {
	Store
	each, keys int
}

func (c *countingStore) UpdateEach(bucket string, keys []string, fn func(string, []byte) ([]byte, error)) map[string]error {
	c.each++
	c.keys += len(keys)
	return c.Store.UpdateEach(bucket, keys, fn)
}

// TestFlushOneWrite: the counts of many domains reach the store in one
// UpdateEach (one transaction in the embedded store), and every domain's
// record is written and promoted as one by one.
func TestFlushOneWrite(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	clock := fakeclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	l := newLearner(t, cs, clock)
	const domains = 300
	for range 20 {
		for i := range domains {
			l.Observe(fmt.Sprintf("d%d.test", i), fmt.Sprintf("mx.d%d.test", i), true, false)
		}
		clock.Advance(9 * time.Hour)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if cs.each != 1 || cs.keys != domains {
		t.Errorf("flush of %d domains: %d UpdateEach calls for %d keys, want 1 for %d", domains, cs.each, cs.keys, domains)
	}
	if n := l.Counts()[string(Verify)]; n != domains {
		t.Errorf("%d domains promoted, want %d", n, domains)
	}
	if rs, _ := List(st); len(rs) != domains {
		t.Errorf("%d records stored, want %d", len(rs), domains)
	}
}
