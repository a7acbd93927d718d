package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

const (
	hostname = "mx.caliop.test"
	domain   = "example.org" // the operator's domain
	waitFor  = 10 * time.Second
)

// fixedNow makes the Received header's date known.
var fixedNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// harness is one inbound Server on 127.0.0.1 in front of a next hop.
type harness struct {
	t     *testing.T
	ca    *testpki.CA
	srv   *Server
	addr  string
	stats *Stats
	done  chan error // Serve's result
}

// start runs a Server whose next hop is nextHop, with Options changed by
// mod (may be nil) before New.
func start(t *testing.T, nextHop string, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, ca: testpki.NewCA(t), stats: &Stats{}, done: make(chan error, 1)}
	leaf := h.ca.Leaf(t, testpki.LeafOptions{Names: []string{hostname}})
	o := Options{
		Hostname: hostname, Domains: []string{domain}, NextHop: nextHop,
		TLS:            &tls.Config{Certificates: []tls.Certificate{leaf}},
		NextHopTimeout: 5 * time.Second, DataTimeout: 5 * time.Second,
		Stats: h.stats, Log: zaptest.NewLogger(t), Now: func() time.Time { return fixedNow },
	}
	if mod != nil {
		mod(&o)
	}
	h.srv = New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	go func() { h.done <- h.srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := h.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-h.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return h
}

// startMX runs a plaintext fake next hop (mxtest) that offers XCLIENT,
// as Postfix does to a host it authorises, and a Server before it.
func startMX(t *testing.T, b mxtest.Behavior, mod func(*Options)) (*harness, *mxtest.Server) {
	t.Helper()
	b.NoSTARTTLS = true
	b.XCLIENT = true
	mx := mxtest.Start(t, "postfix.test", nil, b)
	return start(t, mx.Addr, mod), mx
}

// client is a raw SMTP client, so that tests can misbehave on purpose.
type client struct {
	t    *testing.T
	conn net.Conn
	text *textproto.Conn
}

// dial connects and reads the 220 greeting.
func (h *harness) dial() *client {
	h.t.Helper()
	c := h.dialRaw()
	c.expect(220, "")
	return c
}

func (h *harness) dialRaw() *client {
	h.t.Helper()
	conn, err := net.DialTimeout("tcp", h.addr, waitFor)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(waitFor))
	return &client{t: h.t, conn: conn, text: textproto.NewConn(conn)}
}

// send writes a command line, or raw text with CRLFs of its own.
func (c *client) send(line string) {
	c.t.Helper()
	if !strings.HasSuffix(line, "\n") && !strings.HasSuffix(line, "\r") {
		line += "\r\n"
	}
	if _, err := io.WriteString(c.conn, line); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// read reads one reply.
func (c *client) read() (int, string) {
	c.t.Helper()
	code, msg, err := c.text.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// expect reads a reply and fails unless it has code and starts with
// prefix (the enhanced code, say); it returns the text.
func (c *client) expect(code int, prefix string) string {
	c.t.Helper()
	got, msg := c.read()
	if got != code || !strings.HasPrefix(msg, prefix) {
		c.t.Fatalf("reply %d %q, want %d %q...", got, msg, code, prefix)
	}
	return msg
}

// cmd sends a command and expects its reply.
func (c *client) cmd(line string, code int, prefix string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(code, prefix)
}

func (c *client) ehlo() string { return c.cmd("EHLO client.example", 250, "") }

// startTLS runs STARTTLS and the handshake, verifying the certificate.
func (c *client) startTLS(ca *testpki.CA) *tls.ConnectionState {
	c.t.Helper()
	c.cmd("STARTTLS", 220, "2.0.0")
	tc := tls.Client(c.conn, &tls.Config{ServerName: hostname, RootCAs: ca.Pool})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn, c.text = tc, textproto.NewConn(tc)
	st := tc.ConnectionState()
	return &st
}

// envelope gives MAIL and RCPT and expects them accepted.
func (c *client) envelope(from string, to ...string) {
	c.t.Helper()
	c.cmd("MAIL FROM:<"+from+">", 250, "")
	for _, r := range to {
		c.cmd("RCPT TO:<"+r+">", 250, "")
	}
}

// data sends DATA and body (dot-stuffed, CRLF, "." line included) and
// returns the reply to its end.
func (c *client) data(body string) (int, string) {
	c.t.Helper()
	c.cmd("DATA", 354, "")
	c.send(body)
	return c.read()
}

// closed reports whether the server closed the connection (after any
// replies still unread, which are skipped).
func (c *client) closed() bool {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	buf := make([]byte, 512)
	for {
		_, err := c.conn.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}
}

// downAddr is an address where nothing listens.
func downAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// splitReceived splits a delivered message into its first header field,
// which must be Caliop's Received, and the rest.
func splitReceived(t *testing.T, data []byte) (received, rest string) {
	t.Helper()
	s := string(data)
	if !strings.HasPrefix(s, "Received: ") {
		t.Fatalf("message does not start with Received: %q", s)
	}
	i := 0
	for {
		j := strings.Index(s[i:], "\r\n")
		if j < 0 {
			t.Fatalf("unterminated header: %q", s)
		}
		i += j + 2
		if i >= len(s) || (s[i] != '\t' && s[i] != ' ') {
			return s[:i], s[i:]
		}
	}
}

// commandsWith returns the next hop's command lines starting with verb.
func commandsWith(mx *mxtest.Server, verb string) []string {
	var out []string
	for _, c := range mx.Commands() {
		if strings.HasPrefix(strings.ToUpper(c), verb) {
			out = append(out, c)
		}
	}
	return out
}
