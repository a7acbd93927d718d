package relay

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-smtp"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caliop/relay/internal/mxtest"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/policy"
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

// slowPlanner is a policy engine whose DNS does not answer: each plan
// fails after wait.
type slowPlanner struct{ wait time.Duration }

func (s slowPlanner) Plan(ctx context.Context, domain string) (policy.Plan, error) {
	time.Sleep(s.wait)
	return policy.Plan{}, fmt.Errorf("%w: %s MX: i/o timeout", policy.ErrDNS, domain)
}

// slowKeys is a WKD decision that takes wait (its lookup waits on the
// same dead resolver).
type slowKeys struct{ wait time.Duration }

func (s slowKeys) Decide(context.Context, string) (*openpgp.Entity, *smtp.SMTPError) {
	time.Sleep(s.wait)
	return nil, nil
}

func (slowKeys) Encrypt(w io.Writer, open func() io.Reader, _ []*openpgp.Entity) (pgpmime.Decision, error) {
	_, err := io.Copy(w, open())
	return pgppolicy.NoKey, err
}

// TestRcptDeadResolver: with the resolver dead, the WKD decision and the
// plan wait on it at once, so RCPT is answered (451 4.4.3) after one DNS
// timeout, not two.
func TestRcptDeadResolver(t *testing.T) {
	t.Parallel()
	const timeout = 800 * time.Millisecond
	w := newWorld(t, worldOpts{
		pgp:     slowKeys{timeout},
		planner: func(Planner) Planner { return slowPlanner{timeout} },
	})
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	start := time.Now()
	c.must("RCPT TO:<b@example.test>", "451 4.4.3")
	if took := time.Since(start); took > timeout*3/2 {
		t.Errorf("RCPT answered after %v, want about one timeout (%v)", took, timeout)
	}
}
