package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

// authWorld is a relay that trusts no network and has the user "mta"
// with password "secret" (bcrypt at cost).
func authWorld(t *testing.T, cost int, lim AuthLimits) *world {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("secret"), cost)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, worldOpts{untrusted: true, tls: true, users: map[string]string{"mta": string(hash)}, authLimits: lim})
	w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	return w
}

// tlsClient connects to the relay's SMTP listener and runs STARTTLS. A
// raw client: go-smtp's would send "*" after each failure, which a
// server counts as a bad command.
func (w *world) tlsClient() *rawClient {
	w.t.Helper()
	c := dialRaw(w.t, w.smtp)
	c.must("EHLO mta.test", "250")
	c.must("STARTTLS", "220")
	tc := tls.Client(c.conn, &tls.Config{ServerName: "relay.test", RootCAs: w.ca.Pool})
	if err := tc.Handshake(); err != nil {
		w.t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.must("EHLO mta.test", "250")
	return c
}

// auth says AUTH PLAIN with an initial response and returns the reply.
func (c *rawClient) auth(user, pass string) string {
	c.t.Helper()
	return c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)))
}

// TestAuthFailuresPerConnection: three failures are answered at once,
// the 4th and 5th after a growing delay, the 6th ends the connection with
// 421 4.7.0; every failure is counted.
func TestAuthFailuresPerConnection(t *testing.T) {
	t.Parallel()
	w := authWorld(t, bcrypt.MinCost, AuthLimits{})
	c := w.tlsClient()
	var took []time.Duration
	for i := 1; i <= 5; i++ {
		start := time.Now()
		r := c.auth("mta", "wrong")
		took = append(took, time.Since(start))
		if !strings.HasPrefix(r, "535 ") {
			t.Fatalf("failure %d → %q, want 535", i, r)
		}
	}
	for i, d := range took[:3] {
		if d > 500*time.Millisecond {
			t.Errorf("failure %d took %v, want no delay", i+1, d)
		}
	}
	if took[3] < time.Second || took[4] < 2*time.Second {
		t.Errorf("failures 4 and 5 took %v and %v, want at least 1 s and 2 s", took[3], took[4])
	}
	if r := c.auth("mta", "wrong"); !strings.HasPrefix(r, "421 4.7.0 ") {
		t.Fatalf("6th failure → %q, want 421 4.7.0", r)
	}
	c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.r.ReadString('\n'); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the connection is still open after 421: %v", err)
	}
	if got := w.metric("caliop_auth_failures_total", "reason", "bad-credentials"); got != 6 {
		t.Errorf("caliop_auth_failures_total{reason=bad-credentials} = %v, want 6", got)
	}
}

// TestAuthFailuresPerAddress: an address over its limit gets 454 4.7.0 on
// new connections, even with the right password, until the window ends;
// then the right password works.
func TestAuthFailuresPerAddress(t *testing.T) {
	t.Parallel()
	const window = 1500 * time.Millisecond
	w := authWorld(t, bcrypt.MinCost, AuthLimits{PerAddress: 4, Window: window, Delay: time.Millisecond})
	start := time.Now()
	for i := range 4 {
		c := w.tlsClient()
		if r := c.auth("mta", "guess"); !strings.HasPrefix(r, "535 ") {
			t.Fatalf("guess %d → %q, want 535", i+1, r)
		}
	}
	c := w.tlsClient()
	if r := c.auth("mta", "secret"); !strings.HasPrefix(r, "454 4.7.0 ") {
		t.Fatalf("AUTH over the address limit → %q, want 454 4.7.0", r)
	}
	if got := w.metric("caliop_auth_failures_total", "reason", "rate-limited"); got != 1 {
		t.Errorf("caliop_auth_failures_total{reason=rate-limited} = %v, want 1", got)
	}
	time.Sleep(time.Until(start.Add(window + 100*time.Millisecond)))
	c = w.tlsClient()
	c.must("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00mta\x00secret")), "235")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<b@example.test>", "250")
	c.data(simpleBody)
	c.expect("250")
}

// TestAuthUnknownUserTiming: an unknown user costs the same bcrypt time
// as a known one with a wrong password (medians within a factor of 2).
func TestAuthUnknownUserTiming(t *testing.T) {
	t.Parallel()
	w := authWorld(t, 10, AuthLimits{Free: 100, PerConnection: 100, PerAddress: 1000})
	c := w.tlsClient()
	median := func(user string) time.Duration {
		var d []time.Duration
		for range 7 {
			start := time.Now()
			if r := c.auth(user, "wrong"); !strings.HasPrefix(r, "535 ") {
				t.Fatalf("AUTH %s → %q, want 535", user, r)
			}
			d = append(d, time.Since(start))
		}
		slices.Sort(d)
		return d[len(d)/2]
	}
	known, unknown := median("mta"), median("nobody")
	t.Logf("median AUTH failure: known user %v, unknown user %v", known, unknown)
	if unknown*2 < known || known*2 < unknown {
		t.Errorf("known user %v, unknown user %v: the difference tells which users exist", known, unknown)
	}
}

// TestOutboundConnectionLimits: past max_per_ip an untrusted address gets
// 421 4.7.0 at connect, while a trusted client is still served.
func TestOutboundConnectionLimits(t *testing.T) {
	t.Parallel()
	untrusted := &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Fatalf("127.0.0.2 not usable here (all of 127.0.0.0/8 is loopback on Linux): %v", err)
	} else {
		ln.Close()
	}
	w := newWorld(t, worldOpts{
		trusted:    []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		connLimits: ConnLimits{MaxPerIP: 3, MaxPerTrustedIP: 5},
	})
	w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	dialFrom := func(local *net.TCPAddr) string {
		d := net.Dialer{LocalAddr: local, Timeout: 2 * time.Second}
		conn, err := d.DialContext(context.Background(), "tcp", w.smtp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 512)
		n, _ := conn.Read(buf)
		return string(buf[:n])
	}
	for i := range 3 {
		if g := dialFrom(untrusted); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("connection %d from 127.0.0.2: %q, want the greeting", i+1, g)
		}
	}
	if g := dialFrom(untrusted); !strings.HasPrefix(g, "421 4.7.0 ") {
		t.Errorf("4th connection from 127.0.0.2: %q, want 421 4.7.0", g)
	}
	c := dialRaw(t, w.smtp) // from 127.0.0.1, trusted
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<b@example.test>", "250")
	c.data(simpleBody)
	c.expect("250")
}

// TestOverlongLineNotACommand: the rest of a command line longer than
// the connection's buffer is never a command of its own. A trusted
// client hiding "XFORWARD ..." past the buffer's end gets no 250 from
// Caliop's rules: go-smtp refuses the whole line and ends the session.
func TestOverlongLineNotACommand(t *testing.T) {
	w := newWorld(t, worldOpts{})
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	fmt.Fprintf(c.conn, "NOOP %s\r\nNOOP\r\n", strings.Repeat("x", maxCommandLine-len("NOOP "))+"XFORWARD ADDR=192.0.2.66") // the tail starts at the buffer's end
	var replies []string
	for range 3 {
		l, err := c.r.ReadString('\n')
		if err != nil {
			break
		}
		replies = append(replies, strings.TrimSpace(l))
	}
	if len(replies) == 0 || !strings.HasPrefix(replies[0], "500") {
		t.Errorf("over-long line: replies %q, want go-smtp's 500", replies)
	}
	for _, r := range replies {
		if strings.Contains(r, "XFORWARD") || strings.HasPrefix(r, "250 2.0.0 Ok") {
			t.Errorf("the tail of an over-long line was taken as a command: replies %q", replies)
		}
	}
}
