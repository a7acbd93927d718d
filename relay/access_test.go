package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

func TestNotAnOpenRelay(t *testing.T) {
	w := newWorld(t, worldOpts{untrusted: true})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	for _, addr := range []string{w.smtp, w.lmtp} {
		c := dialRaw(t, addr)
		c.must("LHLO x.test", "") // EHLO on SMTP answers 500 to LHLO; either way go on
		c.must("EHLO x.test", "")
		c.must("MAIL FROM:<a@origin.test>", "554 5.7.1")
	}
	if mx.Connections() != 0 {
		t.Error("an untrusted client caused a downstream connection")
	}
}

func TestAuthAfterSTARTTLS(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	w := newWorld(t, worldOpts{untrusted: true, tls: true, users: map[string]string{"mta": string(hash)}})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")

	c := smtpClient(t, w.smtp, false)
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.Mail("a@origin.test", nil); code(err) != 530 {
		t.Errorf("MAIL without AUTH → %v, want 530", err)
	}
	conn, _ := net.DialTimeout("tcp", w.smtp, 2*time.Second)
	defer conn.Close()
	cl, err := smtpClientTLS(conn, &tls.Config{ServerName: "relay.test", RootCAs: w.ca.Pool})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Auth(sasl.NewPlainClient("", "mta", "wrong")); code(err) != 535 {
		t.Errorf("bad password → %v, want 535", err)
	}
	if err := cl.Auth(sasl.NewPlainClient("", "mta", "secret")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := cl.SendMail("a@origin.test", []string{"b@example.test"}, strings.NewReader(simpleBody)); err != nil {
		t.Fatalf("send after AUTH: %v", err)
	}
	m := mx.WaitMessages(t, 1, 5*time.Second)
	if !strings.Contains(string(m[0].Data), "with ESMTPSA") || !strings.Contains(string(m[0].Data), "(using TLS") {
		t.Errorf("Received header does not name TLS and AUTH: %q", m[0].Data)
	}
}

// TestShutdownAnswers421 checks the drain: an idle session is closed at
// once with 421 4.3.2, a session in a transaction finishes it (the message
// is delivered) and is closed with 421 4.3.2 after.
func TestShutdownAnswers421(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx1.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test")
	idle := dialRaw(t, w.smtp)
	idle.must("EHLO mta.test", "250")
	busy := dialRaw(t, w.smtp)
	busy.must("EHLO mta.test", "250")
	busy.must("MAIL FROM:<a@origin.test>", "250")
	busy.must("RCPT TO:<b@example.test>", "250")

	done := make(chan error, 1)
	go func() { done <- w.srv.Shutdown(t.Context()) }()
	const want = "421 4.3.2 relay.test shutting down"
	if r := idle.reply(); !strings.HasPrefix(r, want) {
		t.Errorf("idle session got %q, want %q", r, want)
	}
	busy.data(simpleBody)
	if r := busy.reply(); !strings.HasPrefix(r, "250") {
		t.Errorf("transaction in flight at shutdown got %q, want 250", r)
	}
	if r := busy.reply(); !strings.HasPrefix(r, want) {
		t.Errorf("after its transaction the session got %q, want %q", r, want)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Shutdown did not return after the last session ended")
	}
	if n := len(mx.Messages()); n != 1 {
		t.Errorf("MX stored %d messages, want 1", n)
	}
}

// TestShutdownGraceEnds: a transaction that does not finish within the
// grace period is cut when it ends, and Shutdown returns.
func TestShutdownGraceEnds(t *testing.T) {
	w := newWorld(t, worldOpts{})
	w.mx("mx1.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx1.example.test")
	stuck := dialRaw(t, w.smtp)
	stuck.must("EHLO mta.test", "250")
	stuck.must("MAIL FROM:<a@origin.test>", "250")
	stuck.must("RCPT TO:<b@example.test>", "250")

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := w.srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want the deadline", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Shutdown took %v", el)
	}
	stuck.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := stuck.r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the stuck session is still open after the grace: %v", err)
	}
}
