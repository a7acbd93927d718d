package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// startInbound starts Caliop with cfg (which sets cfg.Inbound) like
// startCaliop, and also waits up to 15s until the inbound listener, and
// the HTTPS policy host if configured, accept connections.
func startInbound(t *testing.T, bin string, cfg Config) *Process {
	t.Helper()
	p := startCaliop(t, bin, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{cfg.Inbound.Listen, cfg.Inbound.HTTPSListen} {
		if addr == "" {
			continue
		}
		if err := p.waitListening(addr, deadline); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// smtpStartTLS connects to addr (from the local address local when it is
// set), reads the greeting, says EHLO, checks that STARTTLS is offered,
// sends it and runs the TLS handshake with cfg, all within timeout. It
// returns the TLS connection, in the SMTP session's state after STARTTLS
// (the client speaks next). A handshake failure is returned wrapped in
// errHandshake.
func smtpStartTLS(addr, local string, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	text := textproto.NewConn(conn)
	fail := func(stage string, err error) (*tls.Conn, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", stage, err)
	}
	if _, _, err := text.ReadResponse(220); err != nil {
		return fail("greeting", err)
	}
	if err := text.PrintfLine("EHLO client.sender.test"); err != nil {
		return fail("EHLO", err)
	}
	_, msg, err := text.ReadResponse(250)
	if err != nil {
		return fail("EHLO", err)
	}
	if !strings.Contains(strings.ToUpper(msg), "\nSTARTTLS") {
		return fail("EHLO", fmt.Errorf("STARTTLS not offered: %q", msg))
	}
	if err := text.PrintfLine("STARTTLS"); err != nil {
		return fail("STARTTLS", err)
	}
	if _, _, err := text.ReadResponse(220); err != nil {
		return fail("STARTTLS", err)
	}
	// The server sends nothing after its 220 until the handshake: the
	// reader has buffered nothing of it.
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", errHandshake, err)
	}
	conn.SetDeadline(time.Time{})
	return tc, nil
}

var errHandshake = errors.New("TLS handshake")

// smtpClient opens an SMTP session to addr from the local address local
// (e.g. 127.0.6.7), runs STARTTLS without verifying the certificate and
// says EHLO client.sender.test over TLS. Every command is bounded by 20s;
// the client is closed at cleanup.
func smtpClient(t *testing.T, addr, local string) *smtp.Client {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	// go-smtp sets a deadline per command from CommandTimeout, which can
	// only be set once NewClientStartTLS returns: this one bounds the
	// greeting, EHLO and STARTTLS.
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		conn.Close()
		t.Fatalf("STARTTLS with %s: %v", addr, err)
	}
	c.CommandTimeout = 20 * time.Second
	c.SubmissionTimeout = 20 * time.Second
	t.Cleanup(func() { c.Close() })
	// The EHLO after STARTTLS, with the client's name (go-smtp said
	// "localhost" before).
	if err := c.Hello("client.sender.test"); err != nil {
		t.Fatalf("EHLO after STARTTLS: %v", err)
	}
	return c
}

// wantReply checks that err is the SMTP reply code with enhanced code
// ec.
func wantReply(t *testing.T, what string, err error, code int, ec smtp.EnhancedCode) {
	t.Helper()
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Errorf("%s: %v, want the reply %d %d.%d.%d", what, err, code, ec[0], ec[1], ec[2])
		return
	}
	if se.Code != code || se.EnhancedCode != ec {
		t.Errorf("%s: %d %d.%d.%d %s, want %d %d.%d.%d", what, se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message,
			code, ec[0], ec[1], ec[2])
	}
}
