package stscache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caliop/relay/mtasts"
)

func TestRefreshBeforeExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(8*day, "mx.example.test"), nil)
	first := e.lookup("example.test")

	e.clock.Advance(4*day - time.Minute) // before half the max_age
	if n := e.c.RefreshDue(ctx); n != 0 || e.fetch.count("example.test") != 1 {
		t.Fatalf("refreshed %d before its time (%d fetches)", n, e.fetch.count("example.test"))
	}
	e.clock.Advance(2*day + time.Minute) // past three quarters
	if n := e.c.RefreshDue(ctx); n != 1 {
		t.Fatalf("refreshed %d, want 1", n)
	}
	r := e.lookup("example.test")
	if !r.Expires.After(first.Expires) || !r.Expires.Equal(r.Fetched.Add(8*day)) {
		t.Errorf("after refresh expires %v (was %v)", r.Expires, first.Expires)
	}

	// A failing refresh keeps the policy and is retried RetryAfter later.
	e.clock.Advance(7 * day)
	e.fetch.serve("example.test", nil, fmt.Errorf("%w: down", mtasts.ErrFetch))
	before := e.fetch.count("example.test")
	e.c.RefreshDue(ctx)
	e.c.RefreshDue(ctx)
	if got := e.fetch.count("example.test") - before; got != 1 {
		t.Errorf("%d fetches from two passes right after a failure, want 1", got)
	}
	if r := e.lookup("example.test"); r.Policy == nil {
		t.Error("policy dropped after a failed refresh")
	}
	e.clock.Advance(DefaultRetryAfter)
	e.c.RefreshDue(ctx)
	if got := e.fetch.count("example.test") - before; got != 2 {
		t.Errorf("%d fetches after RetryAfter, want 2", got)
	}
	// Expiry drops it from memory and store.
	e.clock.Advance(2 * day)
	e.c.RefreshDue(ctx)
	e.reopen()
	e.dns.set("example.test", "")
	if r := e.lookup("example.test"); r.Policy != nil {
		t.Errorf("expired policy survived: %+v", r)
	}
}

func TestRefreshSpread(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	seen := map[time.Time]bool{}
	for _, d := range []string{"a.test", "b.test", "c.test", "d.test"} {
		at := refreshAt(d, now, 8*day)
		if at.Before(now.Add(4*day)) || at.After(now.Add(6*day)) {
			t.Errorf("%s refreshes at %v, outside [4d, 6d]", d, at.Sub(now))
		}
		seen[at] = true
	}
	if len(seen) < 3 {
		t.Errorf("refresh times not spread: %v", seen)
	}
}

// TestRefetchAfterFailure: a delivery failure under an enforced policy
// re-fetches it at most once per RetryAfter, and says if it changed.
func TestRefetchAfterFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.dns.set("example.test", "1")
	e.fetch.serve("example.test", enforce(day, "mx1.example.test"), nil)
	e.lookup("example.test")

	e.fetch.serve("example.test", enforce(day, "mx1.example.test", "mx2.example.test"), nil) // same id
	if !e.c.Refetch(ctx, "example.test") {
		t.Error("Refetch = false, want true (the MX list changed)")
	}
	if r := e.lookup("example.test"); len(r.Policy.MX) != 2 {
		t.Errorf("policy after refetch: %+v", r.Policy)
	}
	if e.c.Refetch(ctx, "example.test") || e.fetch.count("example.test") != 2 {
		t.Errorf("second Refetch within RetryAfter fetched (%d fetches)", e.fetch.count("example.test"))
	}
	e.clock.Advance(DefaultRetryAfter)
	if e.c.Refetch(ctx, "example.test") {
		t.Error("Refetch = true for an unchanged policy")
	}
	if n := e.fetch.count("example.test"); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

// TestFailuresForgotten: failed fetches of 1,000 domains are remembered
// for RetryAfter (no fetch storm), then forgotten by the next pass, so
// that the cache does not grow with every domain that ever failed.
func TestFailuresForgotten(t *testing.T) {
	e := newEnv(t)
	for i := range 1000 {
		d := fmt.Sprintf("d%d.test", i)
		e.dns.set(d, "1")
		e.fetch.serve(d, nil, errors.New("connection refused"))
		e.lookup(d)
	}
	if n := e.c.Len(); n < 1000 {
		t.Fatalf("Len %d after 1,000 failed fetches, want them remembered", n)
	}
	e.clock.Advance(DefaultRetryAfter)
	e.c.RefreshDue(context.Background())
	if n := e.c.Len(); n != 0 {
		t.Errorf("Len %d after RetryAfter and a pass, want 0", n)
	}
}
