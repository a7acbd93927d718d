package mxtest

import (
	"crypto/tls"
	"errors"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/testpki"
)

const mxName = "mx1.example.org"

// boundedConn caps every deadline at limit, so that no client wait in
// these tests can outlast it, whatever go-smtp's client asks for.
type boundedConn struct {
	net.Conn
	limit time.Time
}

func (c *boundedConn) cap(t time.Time) time.Time {
	if t.IsZero() || t.After(c.limit) {
		return c.limit
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.cap(t)) }
func (c *boundedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.cap(t))
}
func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.cap(t))
}

func dialRaw(t *testing.T, s *Server) net.Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	c := &boundedConn{Conn: raw, limit: time.Now().Add(15 * time.Second)}
	c.SetDeadline(time.Time{})
	t.Cleanup(func() { raw.Close() })
	return c
}

// dialPlain returns a go-smtp client that has not said EHLO yet.
func dialPlain(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	c := smtp.NewClient(dialRaw(t, s))
	c.CommandTimeout = 10 * time.Second
	c.SubmissionTimeout = 10 * time.Second
	return c
}

// dialTLS returns a go-smtp client after STARTTLS, verified against
// ca.Pool for s.Name, and EHLO relay.test.
func dialTLS(t *testing.T, s *Server, ca *testpki.CA) (*smtp.Client, error) {
	t.Helper()
	c, err := smtp.NewClientStartTLS(dialRaw(t, s), &tls.Config{RootCAs: ca.Pool, ServerName: s.Name})
	if err != nil {
		return nil, err
	}
	c.CommandTimeout = 10 * time.Second
	c.SubmissionTimeout = 10 * time.Second
	if err := c.Hello("relay.test"); err != nil {
		return nil, err
	}
	return c, nil
}

func mustDialTLS(t *testing.T, s *Server, ca *testpki.CA) *smtp.Client {
	t.Helper()
	c, err := dialTLS(t, s, ca)
	if err != nil {
		t.Fatalf("STARTTLS to %s: %v", s.Name, err)
	}
	return c
}

// sendData sends body after DATA and returns the error of the final reply.
func sendData(c *smtp.Client, body string) error {
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

func code(err error) int {
	var e *smtp.SMTPError
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func verbs(cmds []string) []string {
	var out []string
	for _, c := range cmds {
		v, _, _ := strings.Cut(c, " ")
		out = append(out, strings.ToUpper(v))
	}
	return out
}

// rawTLS speaks SMTP by hand up to a finished STARTTLS handshake,
// without the EHLO that must follow.
func rawTLS(t *testing.T, s *Server, ca *testpki.CA) *textproto.Conn {
	t.Helper()
	raw := dialRaw(t, s)
	tp := textproto.NewConn(raw)
	expect(t, tp, 220)
	cmd(t, tp, 250, "EHLO relay.test")
	cmd(t, tp, 220, "STARTTLS")
	tc := tls.Client(raw, &tls.Config{RootCAs: ca.Pool, ServerName: s.Name})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return textproto.NewConn(tc)
}

func expect(t *testing.T, tp *textproto.Conn, want int) string {
	t.Helper()
	_, msg, err := tp.ReadResponse(want)
	if err != nil {
		t.Fatalf("reply: %v, want %d", err, want)
	}
	return msg
}

func cmd(t *testing.T, tp *textproto.Conn, want int, line string) string {
	t.Helper()
	if err := tp.PrintfLine("%s", line); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	return expect(t, tp, want)
}
