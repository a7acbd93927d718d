package relay

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/mxtest"
)

// TestTransactionHeldPastBudget: an upstream client that holds a
// transaction open past the delivery budget and then says RSET: the MX
// gets the RSET, the connection stays good for the pool, and its close
// is clean (QUIT, TLS close_notify): go-smtp at the MX logs no error.
func TestTransactionHeldPastBudget(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{timeout: 500 * time.Millisecond})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<b@example.test>", "250")
	time.Sleep(time.Second)
	c.must("RSET", "250")
	c.must("QUIT", "221")
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Contains(mx.Commands(), "RSET") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Contains(mx.Commands(), "RSET") {
		t.Errorf("the MX never got RSET: %q", mx.Commands())
	}
	w.deliver.Pool.Close()
	for !slices.Contains(mx.Commands(), "QUIT") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if errs := mx.Errors(); len(errs) > 0 {
		t.Errorf("the MX logged errors: %s", strings.Join(errs, "; "))
	}
}
