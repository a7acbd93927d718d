package inbound

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

// TestShutdown: idle sessions get 421 4.3.2 at once; a transaction in
// flight finishes, then gets it; new connections are not taken.
func TestShutdown(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	idle := h.dial()
	idle.ehlo()
	greeted := h.dial() // no EHLO: no go-smtp session yet
	busy := h.dial()
	busy.ehlo()
	busy.envelope("alice@sender.example", "bob@example.org")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		done <- h.srv.Shutdown(ctx)
	}()
	for _, c := range []*client{idle, greeted} {
		c.expect(421, "4.3.2 mx.caliop.test shutting down")
		if !c.closed() {
			t.Error("idle session left open")
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a transaction in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	if code, _ := busy.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 {
		t.Errorf("transaction in flight: %d, want 250", code)
	}
	busy.expect(421, "4.3.2")
	if !busy.closed() {
		t.Error("session left open after its transaction")
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-h.done; err != nil {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	h.done <- nil // for the harness's cleanup
	if n := len(mx.Messages()); n != 1 {
		t.Errorf("messages: %d", n)
	}
}

// TestShutdownGraceEnds: a transaction still open when the grace period
// ends is cut, and Shutdown returns.
func TestShutdownGraceEnds(t *testing.T) {
	t.Parallel()
	h, _ := startMX(t, mxtest.Behavior{}, nil)
	stuck := h.dial()
	stuck.ehlo()
	stuck.envelope("alice@sender.example", "bob@example.org")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := h.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	if !stuck.closed() {
		t.Error("the transaction's connection is still open after the grace")
	}
	<-h.done
	h.done <- nil // for the harness's cleanup
}
