package relay

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/readmetest"
	"github.com/caliop/relay/internal/testworld/mxtest"
)

// TestRouteFixedByFirstAcceptedRecipient drives the relay as real MTAs
// do: a first recipient refused by its MX (554, or 450 greylisting) does
// not fix the route, so the next recipient, of another domain, is
// delivered once in the same transaction, and the reply to the body is
// its MX's 250. Exim pipelines "BDAT n LAST" after its RCPTs; a client
// without PIPELINING sends DATA; Postfix sorts recipients.
func TestRouteFixedByFirstAcceptedRecipient(t *testing.T) {
	t.Parallel()
	refusals := map[string]*smtp.SMTPError{
		"554": {Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "no thanks"},
		"450": {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"},
	}
	for name, refusal := range refusals {
		for _, mode := range []string{"exim BDAT pipelined", "DATA", "postfix sorted"} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, worldOpts{})
				bad := w.mx("mx.refuse.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"x@refuse.test": refusal}})
				good := w.mx("mx.ok.test", mxtest.Behavior{})
				w.domain("refuse.test", "mx.refuse.test")
				w.domain("ok.test", "mx.ok.test")
				c := dialRaw(t, w.smtp)
				c.must("EHLO mta.test", "250")
				rcpts := []string{"x@refuse.test", "y@ok.test"}
				if mode == "postfix sorted" {
					// Postfix sorts by domain: "ok.test" < "refuse.test"
					// puts the good one first; the refused one then gets
					// 452 and goes in another transaction.
					rcpts = []string{"y@ok.test", "x@refuse.test"}
				}
				body := "Subject: route\r\n\r\nhello\r\n"
				var replies []string
				switch mode {
				case "exim BDAT pipelined":
					var b strings.Builder
					b.WriteString("MAIL FROM:<a@origin.test>\r\n")
					for _, r := range rcpts {
						b.WriteString("RCPT TO:<" + r + ">\r\n")
					}
					fmt.Fprintf(&b, "BDAT %d LAST\r\n%s", len(body), body)
					c.conn.Write([]byte(b.String()))
					for range 2 + len(rcpts) {
						replies = append(replies, c.reply())
					}
				default:
					replies = append(replies, c.send("MAIL FROM:<a@origin.test>"))
					for _, r := range rcpts {
						replies = append(replies, c.send("RCPT TO:<"+r+">"))
					}
					c.data(body)
					replies = append(replies, c.reply())
				}
				want := []string{"250", fmt.Sprint(refusal.Code), "250", "250"}
				if mode == "postfix sorted" {
					want = []string{"250", "250", "452", "250"}
				}
				for i, w := range want {
					if !strings.HasPrefix(replies[i], w) {
						t.Errorf("replies %q, want codes %v", replies, want)
						break
					}
				}
				msgs := good.WaitMessages(t, 1, 5*time.Second)
				time.Sleep(100 * time.Millisecond)
				if msgs = good.Messages(); len(msgs) != 1 || strings.Join(msgs[0].To, ",") != "y@ok.test" || !strings.HasSuffix(string(msgs[0].Data), body) {
					t.Errorf("ok.test received %d messages, want one to y@ok.test", len(msgs))
				}
				if n := len(bad.Messages()); n != 0 {
					t.Errorf("refuse.test received %d messages", n)
				}
			})
		}
	}
}

// TestTentativeRouteReused: after a refused first recipient, a second
// recipient of the same domain goes on the same downstream transaction
// (one MAIL at the MX).
func TestTentativeRouteReused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx.example.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"gone@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	w.domain("example.test", "mx.example.test")
	replies, data := transact(t, w.smtp, []string{"gone@example.test", "here@example.test"}, simpleBody)
	if !strings.HasPrefix(replies[0], "550 5.1.1") || !strings.HasPrefix(replies[1], "250") || !strings.HasPrefix(data, "250") {
		t.Errorf("replies %q, DATA %q", replies, data)
	}
	if n := mx.MailCount(); n != 1 {
		t.Errorf("MX saw %d MAIL, want 1", n)
	}
}

// TestLongLine: a body line of 2,100 octets is refused for good (554
// 5.6.0) over DATA and over BDAT, nothing reaches the MX, and the session
// goes on: the next message is delivered.
func TestLongLine(t *testing.T) {
	t.Parallel()
	long := "Subject: long\r\n\r\n" + strings.Repeat("x", 2098) + "\r\n"
	for _, bdat := range []bool{false, true} {
		t.Run(fmt.Sprintf("bdat=%v", bdat), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{})
			mx := w.mx("mx.example.test", mxtest.Behavior{})
			w.domain("example.test", "mx.example.test")
			c := dialRaw(t, w.smtp)
			c.must("EHLO mta.test", "250")
			c.must("MAIL FROM:<a@origin.test>", "250")
			c.must("RCPT TO:<b@example.test>", "250")
			var r string
			if bdat {
				fmt.Fprintf(c.conn, "BDAT %d LAST\r\n%s", len(long), long)
				r = c.reply()
			} else {
				c.data(long)
				r = c.reply()
			}
			if !strings.HasPrefix(r, "554 5.6.0 ") {
				t.Errorf("long line → %q, want 554 5.6.0", r)
			}
			c.must("MAIL FROM:<a@origin.test>", "250")
			c.must("RCPT TO:<b@example.test>", "250")
			c.data(simpleBody)
			c.expect("250")
			if msgs := mx.Messages(); len(msgs) != 1 || strings.Contains(string(msgs[0].Data), "xxxx") {
				t.Errorf("MX stored %d messages; want only the short one", len(msgs))
			}
		})
	}
}

// caliopID is Caliop's transaction id in a reply.
var caliopID = regexp.MustCompile(`\[caliop [0-9a-f]{12}\]`)

// TestRepliesAsDocumented: the replies to MAIL and RCPT are what the
// README's table says, accepted and refused.
func TestRepliesAsDocumented(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.mx("mx.example.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"gone@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	w.domain("example.test", "mx.example.test")
	v := map[string]string{"SENDER": "a@origin.test", "RECIPIENT": "b@example.test", "CODE": "550", "X.Y.Z": "5.1.1", "MX": "mx.example.test", "IP": "127.0.1.1", "TEXT": "no such user", "[caliop ID]": "[caliop ID]"}
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	for _, step := range []struct{ cmd, row string }{
		{"MAIL FROM:<a@origin.test>", "MAIL accepted"},
		{"RCPT TO:<gone@example.test>", "RCPT refused by the destination MX"},
		{"RCPT TO:<b@example.test>", "RCPT accepted"},
	} {
		want := readmetest.Fill(readmetest.Reply(t, "..", step.row), v)
		if got := caliopID.ReplaceAllString(c.send(step.cmd), "[caliop ID]"); got != want {
			t.Errorf("%s → %q; README says %q", step.cmd, got, want)
		}
	}
	c.must("RSET", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<gone@example.test>", "550")
	want := readmetest.Reply(t, "..", "DATA or BDAT after every RCPT was refused")
	if got := c.send("DATA"); got != want {
		t.Errorf("DATA with no recipient → %q; README says %q", got, want)
	}
}

// TestNoValidRecipients: DATA or a pipelined BDAT after every RCPT was
// refused gets 554 5.5.1 (RFC 5321 §3.3), the chunk is read and
// dropped, and the session goes on.
func TestNoValidRecipients(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	w.mx("mx.example.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"gone@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}})
	w.domain("example.test", "mx.example.test")
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	body := "Subject: x\r\n\r\nhi\r\n"
	fmt.Fprintf(c.conn, "MAIL FROM:<a@origin.test>\r\nRCPT TO:<gone@example.test>\r\nBDAT %d LAST\r\n%s", len(body), body)
	c.expect("250")
	c.expect("550 5.1.1")
	c.expect("554 5.5.1 No valid recipients")
	c.must("RSET", "250")
	c.must("MAIL FROM:<a@origin.test>", "250")
	c.must("RCPT TO:<gone@example.test>", "550")
	c.must("DATA", "554 5.5.1 No valid recipients")
	c.must("NOOP", "250")
}
