package relay

import (
	"testing"
	"time"
)

// TestWorkers: routes one after another reuse one worker; routes at once
// each get a worker at once, none waiting for another.
func TestWorkers(t *testing.T) {
	t.Parallel()
	w := newWorkers()
	for i := range 20 {
		done := make(chan struct{})
		w.Go(func() { close(done) })
		<-done
		waitFor(t, func() bool { return w.idleCount() == 1 }, "worker back to idle after route %d", i)
	}
	if n := w.started.Load(); n != 1 {
		t.Errorf("20 routes one after another started %d workers, want 1", n)
	}

	release, running := make(chan struct{}), make(chan struct{}, 3)
	for range 3 {
		w.Go(func() { running <- struct{}{}; <-release })
	}
	for i := range 3 {
		select {
		case <-running:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 3 routes running at once: Go waited for a worker", i)
		}
	}
	close(release)
	if n := w.started.Load(); n != 3 {
		t.Errorf("3 routes at once started %d workers in all, want 3 (the idle one reused)", n)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool, what string, args ...any) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: "+what, args...)
		}
	}
}
