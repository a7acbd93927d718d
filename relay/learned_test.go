package relay

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/redistest"
	"github.com/caliop/relay/internal/testworld/testpki"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/metrics/metricstest"
	"github.com/caliop/relay/store"
	"github.com/emersion/go-smtp"
)

// learnedWorld has example.test on two MX hosts with valid certificates,
// delivered to 20 times over 7 days and more (a session each), so that
// it is promoted to a learned requirement.
func learnedWorld(t *testing.T, mode string) (w *world, mx1, mx2 *mxtest.Server) {
	t.Helper()
	return learnedWorldOn(t, mode, nil)
}

// learnedWorldOn is learnedWorld with the learner's store st (nil: its
// own).
func learnedWorldOn(t *testing.T, mode string, st store.Store) (w *world, mx1, mx2 *mxtest.Server) {
	t.Helper()
	w = newWorld(t, worldOpts{learn: mode, noPool: true, learnStore: st})
	mx1 = w.mx("mx1.example.test", mxtest.Behavior{})
	mx2 = w.mx("mx2.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test", "mx2.example.test")
	c := smtpClient(t, w.smtp, false)
	for i := range 20 {
		if err := c.SendMail("a@sender.test", []string{fmt.Sprintf("u%d@example.test", i)}, strings.NewReader(simpleBody)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		w.clock.Advance(9 * time.Hour)
	}
	if err := w.learner.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.learner.Reload(); err != nil {
		t.Fatal(err)
	}
	r, ok := w.learner.Lookup("example.test")
	if !ok || r.Requirement != learned.Verify || r.Sessions != 20 || strings.Join(r.MX, ",") != "mx1.example.test" {
		t.Fatalf("after 20 authenticated sessions over 7 days: %+v %v, want verify learned from mx1", r, ok)
	}
	// The store holds it: a restart (a new learner on it) keeps it.
	again := learned.New(learned.Config{Store: w.learnStore, Now: w.clock.Now})
	if err := again.Reload(); err != nil {
		t.Fatal(err)
	}
	if r, ok := again.Lookup("example.test"); !ok || r.Requirement != learned.Verify {
		t.Fatalf("after a restart: %+v %v", r, ok)
	}
	return w, mx1, mx2
}

func selfSigned(t *testing.T, w *world, host string) *tls.Certificate {
	c := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{host}, SelfSigned: true})
	return &c
}

// TestLearnedReport: after promotion, an attacker on mx1's path presents
// a self-signed certificate. Under report the message is delivered as
// today, and the violation counted once.
func TestLearnedReport(t *testing.T) {
	w, _, _ := learnedWorld(t, "report")
	attacker := w.hijack("mx1.example.test", mxtest.Behavior{Cert: selfSigned(t, w, "mx1.example.test")})
	c := smtpClient(t, w.smtp, false)
	if err := c.SendMail("a@sender.test", []string{"b@example.test"}, strings.NewReader(simpleBody)); err != nil {
		t.Fatalf("report mode changed the outcome: %v", err)
	}
	if n := attacker.MailCount(); n != 1 {
		t.Errorf("attacker saw MAIL %d times, want 1 (report delivers as today)", n)
	}
	if v := metricstest.Value(t, w.reg, "caliop_learned_policy_violations_total", "domain", "example.test", "result_type", "certificate-not-trusted"); v != 1 {
		t.Errorf("violations counted: %v, want 1", v)
	}
}

// TestLearnedEnforce: the same attack under enforce: mx1 is refused
// before MAIL FROM (the learned Verify), the backup MX with a valid
// certificate takes the message; with both hijacked the client gets
// 451 4.7.5 naming the learned policy and its age.
func TestLearnedEnforce(t *testing.T) {
	w, _, mx2 := learnedWorld(t, "enforce")
	before := mx2.MailCount()
	attacker := w.hijack("mx1.example.test", mxtest.Behavior{Cert: selfSigned(t, w, "mx1.example.test")})
	c := smtpClient(t, w.smtp, false)
	if err := c.SendMail("a@sender.test", []string{"b@example.test"}, strings.NewReader(simpleBody)); err != nil {
		t.Fatalf("backup MX not used: %v", err)
	}
	if n := attacker.MailCount(); n != 0 {
		t.Errorf("MAIL FROM reached the attacker %d times", n)
	}
	if n := mx2.MailCount() - before; n != 1 {
		t.Errorf("backup MX saw MAIL %d times, want 1", n)
	}
	w.hijack("mx2.example.test", mxtest.Behavior{Cert: selfSigned(t, w, "mx2.example.test")})
	err := c.SendMail("a@sender.test", []string{"c@example.test"}, strings.NewReader(simpleBody))
	se, _ := err.(*smtp.SMTPError)
	if se == nil || se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 7, 5}) || !strings.Contains(se.Message, "learned TLS policy verify of example.test since 2026-11-08 (0 days)") {
		t.Errorf("both MX hijacked: %v, want 451 4.7.5 naming the learned policy", err)
	}
	if v := metricstest.Value(t, w.reg, "caliop_learned_policy_violations_total", "domain", "example.test", "result_type", "certificate-not-trusted"); v < 2 {
		t.Errorf("violations counted: %v, want the refused sessions", v)
	}
}

// TestLearnedDANEExpected: a domain whose every session matched TLSA
// records learns "dane"; when its TLSA answer stops being DNSSEC-secure
// (an attacker stripping it), the session is a violation: counted under
// report, the message delivered as today.
func TestLearnedDANEExpected(t *testing.T) {
	w := newWorld(t, worldOpts{learn: "report", noPool: true, dane: true})
	leaf := w.ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx.example.test"}})
	w.mx("mx.example.test", mxtest.Behavior{Cert: &leaf})
	w.domain("example.test", "mx.example.test")
	w.dns.Add(tlsa("mx.example.test", 3, 1, leaf.Leaf))
	c := smtpClient(t, w.smtp, false)
	for i := range 20 {
		if err := c.SendMail("a@sender.test", []string{fmt.Sprintf("u%d@example.test", i)}, strings.NewReader(simpleBody)); err != nil {
			t.Fatal(err)
		}
		w.clock.Advance(9 * time.Hour)
	}
	w.learner.Flush()
	w.learner.Reload()
	if r, ok := w.learner.Lookup("example.test"); !ok || r.Requirement != learned.DANE {
		t.Fatalf("after 20 DANE sessions: %+v %v, want dane", r, ok)
	}
	w.dns.SetAuthentic("_25._tcp.mx.example.test", false)
	if err := c.SendMail("a@sender.test", []string{"x@example.test"}, strings.NewReader(simpleBody)); err != nil {
		t.Fatalf("report mode changed the outcome: %v", err)
	}
	if v := metricstest.Value(t, w.reg, "caliop_learned_policy_violations_total", "domain", "example.test", "result_type", "dane-required"); v != 1 {
		t.Errorf("violations counted: %v, want 1 dane-required", v)
	}
}

// TestLearnedSecondReplica: a replica that shares the store (Redis,
// cluster mode) enforces what the first one learned: after its reload,
// an attacker on its primary MX's path never gets MAIL FROM.
func TestLearnedSecondReplica(t *testing.T) {
	addr, _ := redistest.Start(t)
	open := func() store.Store {
		st, err := store.OpenRedis(store.RedisOptions{URL: "redis://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	learnedWorldOn(t, "enforce", open())
	w2 := newWorld(t, worldOpts{learn: "enforce", noPool: true, learnStore: open()})
	w2.mx("mx1.example.test", mxtest.Behavior{})
	mx2 := w2.mx("mx2.example.test", mxtest.Behavior{})
	w2.domain("example.test", "mx1.example.test", "mx2.example.test")
	if err := w2.learner.Reload(); err != nil {
		t.Fatal(err)
	}
	attacker := w2.hijack("mx1.example.test", mxtest.Behavior{Cert: selfSigned(t, w2, "mx1.example.test")})
	c := smtpClient(t, w2.smtp, false)
	if err := c.SendMail("a@sender.test", []string{"b@example.test"}, strings.NewReader(simpleBody)); err != nil {
		t.Fatalf("second replica: %v", err)
	}
	if n := attacker.MailCount(); n != 0 {
		t.Errorf("second replica sent MAIL FROM to the attacker %d times", n)
	}
	if n := mx2.MailCount(); n != 1 {
		t.Errorf("second replica's backup MX saw MAIL %d times, want 1", n)
	}
}
