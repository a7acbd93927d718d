package relay

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"github.com/caliop/relay/internal/mxtest"
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

func TestShutdownAnswers421(t *testing.T) {
	w := newWorld(t, worldOpts{})
	idle := dialRaw(t, w.smtp)
	idle.must("EHLO mta.test", "250")
	go w.srv.Shutdown(t.Context())
	deadline := time.Now().Add(3 * time.Second)
	for !w.srv.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := idle.reply(); !strings.HasPrefix(r, "421") {
		t.Errorf("idle session got %q, want 421", r)
	}
}
