package relay

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestTarpitMX: MX 10 accepts and never greets, MX 20 works; the greeting
// timeout moves on to MX 20 well within the delivery budget, and the
// attempt on MX 10 is logged with its timeout.
func TestTarpitMX(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{timeout: 5 * time.Second, greeting: 500 * time.Millisecond})
	core, logs := observer.New(zap.InfoLevel)
	w.deliver.Log = zap.New(core)
	w.tarpit("mx1.example.test")
	good := w.mx("mx2.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test", "mx2.example.test")
	start := time.Now()
	replies, data := transact(t, w.smtp, []string{"b@example.test"}, simpleBody)
	took := time.Since(start)
	if !strings.HasPrefix(replies[0], "250") || !strings.HasPrefix(data, "250") {
		t.Fatalf("RCPT %q, DATA %q", replies, data)
	}
	if took > 3*time.Second {
		t.Errorf("delivery took %v: the tarpit held it", took)
	}
	if n := len(good.Messages()); n != 1 {
		t.Errorf("MX 20 stored %d messages, want 1", n)
	}
	found := false
	for _, e := range logs.FilterField(zap.String("mx", "mx1.example.test")).All() {
		if strings.Contains(e.ContextMap()["reply"].(string), "greeting") && strings.Contains(e.ContextMap()["reply"].(string), "timeout") {
			found = true
		}
	}
	if !found {
		t.Errorf("no log line names mx1's greeting timeout: %v", logs.All())
	}
}
