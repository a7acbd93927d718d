package inbound

import (
	"context"
	"testing"
	"time"

	"github.com/caliop/relay/internal/mxtest"
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
