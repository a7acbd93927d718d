package learned

import (
	"fmt"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/fakeclock"
	"github.com/caliop/relay/internal/testworld/redistest"
	"github.com/caliop/relay/store"
)

// TestReplicasOnRedis: two replicas on one Redis (cluster mode) learn
// together. Each sees half of the sessions; their flushes add up, the
// domain is promoted, and the replica that saw none of the later ones
// enforces it after a reload. `caliop learned forget` on the shared
// store reaches both.
func TestReplicasOnRedis(t *testing.T) {
	t.Parallel()
	addr, _ := redistest.Start(t)
	open := func() Store {
		st, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	clock := fakeclock.New(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	a := New(Config{Store: open(), Now: clock.Now})
	b := New(Config{Store: open(), Now: clock.Now})
	for i := range 20 {
		l := a
		if i%2 == 1 {
			l = b
		}
		l.Observe("example.test", fmt.Sprintf("mx%d.example.test", i%2+1), true, false)
		clock.Advance(9 * time.Hour)
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for name, l := range map[string]*Learner{"a": a, "b": b} {
		if err := l.Reload(); err != nil {
			t.Fatal(err)
		}
		r, ok := l.Lookup("example.test")
		if !ok || r.Requirement != Verify || r.Sessions != 20 || len(r.MX) != 2 {
			t.Errorf("replica %s: %+v %v, want verify after 20 sessions from both", name, r, ok)
		}
	}
	if err := Forget(open(), "example.test"); err != nil {
		t.Fatal(err)
	}
	for name, l := range map[string]*Learner{"a": a, "b": b} {
		l.Reload()
		if _, ok := l.Lookup("example.test"); ok {
			t.Errorf("replica %s still enforces a forgotten policy", name)
		}
	}
}
