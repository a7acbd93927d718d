package inbound

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		limits Limits
		open   int // connections admitted before the refused one
	}{
		{"per IP", Limits{MaxPerIP: 2}, 2},
		{"all clients", Limits{MaxConnections: 1}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, downAddr(t), func(o *Options) { o.Limits = tc.limits })
			var open []*client
			for range tc.open {
				open = append(open, h.dial())
			}
			refused := h.dialRaw()
			refused.expect(421, "4.7.0 mx.caliop.test too many connections, try again later")
			if !refused.closed() {
				t.Errorf("refused connection left open")
			}
			// A slot comes back when its session ends.
			open[0].cmd("QUIT", 221, "")
			deadline := time.Now().Add(waitFor)
			for {
				c := h.dialRaw()
				if code, _ := c.read(); code == 220 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("slot never released")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestTooManyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxErrors int
		commands  []string
	}{
		{"our limit", 3, []string{"FOO", "RCPT TO:<bob@other.example>", "BAR"}},
		// go-smtp closes after four bad commands whatever MaxErrors
		// says; its 500 becomes the same 421.
		{"go-smtp's limit", 10, []string{"FOO", "BAR", "BAZ", "QUX"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, _ := startMX(t, mxtest.Behavior{}, func(o *Options) { o.Limits.MaxErrors = tc.maxErrors })
			c := h.dial()
			c.ehlo()
			c.envelope("alice@sender.example", "bob@example.org")
			for _, cmd := range tc.commands {
				c.send(cmd)
				if code, msg := c.read(); code/100 != 5 {
					t.Fatalf("%s: %d %s", cmd, code, msg)
				}
			}
			c.expect(421, "4.7.0 mx.caliop.test too many errors")
			if !c.closed() {
				t.Error("connection left open")
			}
		})
	}
}

// TestLineTooLong: a command line over Limits.MaxLine gets 500 5.5.0 and
// a body line over it 554 5.6.0, over DATA and BDAT (RFC 5321
// §4.5.3.1.6); nothing reaches the next hop, and the session goes on.
func TestLineTooLong(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, func(o *Options) { o.Limits.MaxLine = 1000 })
	c := h.dial()
	c.cmd("EHLO "+strings.Repeat("a", 990), 250, "") // within the limit
	c.cmd("NOOP "+strings.Repeat("a", 1500), 500, "5.5.0")
	c.cmd("NOOP "+strings.Repeat("a", 5000), 500, "5.5.0") // past the read buffer
	c.cmd("NOOP", 250, "")
	body := "Subject: x\r\n\r\n" + strings.Repeat("b", 1500) + "\r\n"
	c.envelope("alice@sender.example", "bob@example.org")
	if code, msg := c.data(body + ".\r\n"); code != 554 || !strings.HasPrefix(msg, "5.6.0") {
		t.Errorf("long body line over DATA: %d %s, want 554 5.6.0", code, msg)
	}
	c.envelope("alice@sender.example", "bob@example.org")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(body), body))
	if code, msg := c.read(); code != 554 || !strings.HasPrefix(msg, "5.6.0") {
		t.Errorf("long body line over BDAT: %d %s, want 554 5.6.0", code, msg)
	}
	c.envelope("alice@sender.example", "bob@example.org")
	if code, _ := c.data("Subject: short\r\n\r\nok\r\n.\r\n"); code != 250 {
		t.Errorf("the session did not go on: %d", code)
	}
	if msgs := mx.Messages(); len(msgs) != 1 || strings.Contains(string(msgs[0].Data), "bbbb") {
		t.Errorf("next hop stored %d messages; want only the short one", len(msgs))
	}
}

func TestCommandTimeout(t *testing.T) {
	t.Parallel()
	h := start(t, downAddr(t), func(o *Options) { o.Limits.CommandTimeout = 200 * time.Millisecond })
	c := h.dial()
	c.ehlo()
	began := time.Now()
	c.expect(421, "4.4.2")
	if !c.closed() {
		t.Error("idle connection left open")
	}
	if d := time.Since(began); d > 3*time.Second {
		t.Errorf("idle client cut after %v", d)
	}
}

// TestBodyPace: the idle timeout holds for each read of the body, not for
// all of it; a body slower than MinDataRate is cut, with DATA or BDAT, and
// nothing reaches the next hop.
func TestBodyPace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		rate   int64
		bdat   bool
		pieces int           // body pieces of 40 bytes
		every  time.Duration // between pieces
		pause  time.Duration // once, mid-body
		code   int
		prefix string
	}{
		{"steady, longer than the idle timeout in all", 0, false, 12, 100 * time.Millisecond, 0, 250, "2.0.0"},
		{"a pause beyond the idle timeout", 0, false, 4, 10 * time.Millisecond, time.Second, 421, "4.4.2"},
		{"fast enough", 100, false, 12, 100 * time.Millisecond, 0, 250, "2.0.0"},
		{"too slow, DATA", 1000, false, 50, 100 * time.Millisecond, 0, 451, "4.4.2 mx.caliop.test data too slow"},
		{"too slow, BDAT", 1000, true, 50, 100 * time.Millisecond, 0, 451, "4.4.2 mx.caliop.test data too slow"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, mxtest.Behavior{}, func(o *Options) {
				o.Limits.CommandTimeout, o.Limits.MinDataRate = 400*time.Millisecond, tc.rate
			})
			h.srv.window = 300 * time.Millisecond
			c := h.dial()
			c.ehlo()
			c.envelope("alice@sender.example", "bob@example.org")
			piece := strings.Repeat("x", 38) + "\r\n"
			if tc.bdat {
				c.send(fmt.Sprintf("BDAT %d LAST", tc.pieces*len(piece)))
			} else {
				c.cmd("DATA", 354, "")
			}
			go trickle(c, piece, tc.pieces, tc.every, tc.pause, !tc.bdat)
			c.expect(tc.code, tc.prefix)
			if tc.code == 250 {
				return
			}
			if !c.closed() {
				t.Error("connection left open")
			}
			if n := len(commandsWith(mx, "DATA")) + len(commandsWith(mx, "BDAT")); n != 0 || len(mx.Messages()) != 0 {
				t.Errorf("the next hop got a body: %q", mx.Commands())
			}
		})
	}
}

// trickle writes the body in pieces, from a goroutine of its own: it
// stops at the first error and never touches t.
func trickle(c *client, piece string, n int, every, pause time.Duration, end bool) {
	for i := range n {
		if i == n/2 {
			time.Sleep(pause)
		}
		if _, err := c.conn.Write([]byte(piece)); err != nil {
			return
		}
		time.Sleep(every)
	}
	if end {
		c.conn.Write([]byte(".\r\n"))
	}
}

func TestKeepAliveWhileBodyIsSlow(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	h.srv.keepAlive = 50 * time.Millisecond
	c := h.dial()
	c.ehlo()
	c.envelope("alice@sender.example", "bob@example.org")
	c.cmd("DATA", 354, "")
	trickle(c, "Subject: x\r\n", 1, 300*time.Millisecond, 0, true)
	c.expect(250, "2.0.0")
	if n := len(commandsWith(mx, "NOOP")); n < 2 {
		t.Errorf("%d NOOPs to the next hop while the body came, want some", n)
	}
}
