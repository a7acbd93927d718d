package relay

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-smtp"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caliop/relay/internal/testworld/mxtest"
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

func (slowKeys) Encrypt(w io.Writer, m pgpmime.Message, _ []*openpgp.Entity) (pgpmime.Decision, error) {
	_, err := io.Copy(w, m.Open())
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
	if took := time.Since(start); took > timeout*7/4 {
		t.Errorf("RCPT answered after %v, want about one timeout (%v)", took, timeout)
	}
}

// TestXFORWARD: a trusted MTA is offered XFORWARD (Postfix
// XFORWARD_README); what it says (its queue id, the original client)
// is in Caliop's log line for the message, and the final reply names
// Caliop's id, which that line carries. An untrusted client is neither
// offered XFORWARD nor heard.
func TestXFORWARD(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.InfoLevel)
	w := newWorld(t, worldOpts{log: zap.New(core)})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	c := dialRaw(t, w.smtp)
	if ehlo := c.send("EHLO mta.test"); !strings.Contains(ehlo, "\n250 XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT") {
		t.Fatalf("EHLO reply does not offer XFORWARD last:\n%s", ehlo)
	}
	c.must("XFORWARD NAME=client.example ADDR=192.0.2.7 PROTO=ESMTP", "250")
	c.must("XFORWARD HELO=client.example IDENT=4QXyz1Abc SOURCE=REMOTE", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<b@example.test>", "250")
	c.data("Subject: x\r\n\r\nXFORWARD IDENT=in-the-body\r\n")
	reply := c.reply()
	m := caliopID.FindString(reply)
	if !strings.HasPrefix(reply, "250") || m == "" {
		t.Fatalf("end of DATA: %q, want 250 naming Caliop's id", reply)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(m, "[caliop "), "]")
	lines := logs.FilterMessage("message").FilterField(zap.String("id", id)).All()
	if len(lines) != 1 || lines[0].ContextMap()["queue_id"] != "4QXyz1Abc" || lines[0].ContextMap()["orig_client"] != "192.0.2.7" {
		t.Errorf("log lines for %s: %+v; want one with queue_id 4QXyz1Abc and orig_client 192.0.2.7", id, lines)
	}
	if msgs := mx.Messages(); len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "XFORWARD IDENT=in-the-body") {
		t.Errorf("a body line that looks like XFORWARD must stay in the body")
	}

	u := newWorld(t, worldOpts{trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	c = dialRaw(t, u.smtp)
	if ehlo := c.send("EHLO mta.test"); strings.Contains(ehlo, "XFORWARD") {
		t.Errorf("XFORWARD offered to an untrusted client")
	}
	c.must("XFORWARD IDENT=forged", "5")
}
