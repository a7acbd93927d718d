package relay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/policy"
)

// lmtpTransact sends one LMTP transaction and returns the reply lines
// after DATA, one per accepted recipient in RCPT order.
func lmtpTransact(t *testing.T, addr string, rcpts []string, body string) []string {
	t.Helper()
	c := dialRaw(t, addr)
	c.must("LHLO mta.test", "250")
	c.must("MAIL FROM:<sender@origin.test>", "250")
	for _, r := range rcpts {
		c.must("RCPT TO:<"+r+">", "250")
	}
	c.data(body)
	out := make([]string, len(rcpts))
	for i := range rcpts {
		out[i] = c.reply()
	}
	return out
}

func TestLMTPTwoDomainsOneFailing(t *testing.T) {
	w := newWorld(t, worldOpts{})
	good := w.mx("mx.good.test", mxtest.Behavior{})
	bad := w.mx("mx.bad.test", mxtest.Behavior{NoSTARTTLS: true})
	w.domain("good.test", "mx.good.test")
	w.domain("bad.test", "mx.bad.test")
	replies := lmtpTransact(t, w.lmtp, []string{"a@good.test", "b@bad.test", "c@good.test", "d@bad.test"}, simpleBody)
	want := []string{"250 2.0.0 <a@good.test> mx.good.test", "451 4.7.10 <b@bad.test> mx.bad.test", "250 2.0.0 <c@good.test> mx.good.test", "451 4.7.10 <d@bad.test>"}
	for i := range want {
		if !strings.HasPrefix(replies[i], want[i]) {
			t.Errorf("reply %d = %q, want %q", i, replies[i], want[i])
		}
	}
	if m := good.Messages(); len(m) != 1 || strings.Join(m[0].To, ",") != "a@good.test,c@good.test" {
		t.Errorf("good MX stored %+v", m)
	}
	if bad.MailCount() != 0 {
		t.Errorf("MAIL FROM reached the MX without STARTTLS %d times", bad.MailCount())
	}
}

func TestLMTPRecipientRefusedAtRCPT(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx.example.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"b@example.test": {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "try later"}}})
	w.domain("example.test", "mx.example.test")
	replies := lmtpTransact(t, w.lmtp, []string{"a@example.test", "b@example.test"}, simpleBody)
	if !strings.HasPrefix(replies[0], "250") || !strings.HasPrefix(replies[1], "450 4.2.1 <b@example.test> mx.example.test [127.0.1.1] said: try later") {
		t.Errorf("replies %q", replies)
	}
	if m := mx.Messages(); len(m) != 1 || len(m[0].To) != 1 {
		t.Errorf("stored %+v", m)
	}
}

// TestSmuggling sends each sequence that some servers read as the end of
// data, followed by a forged transaction, and checks that exactly one
// message arrives, with only CRLF line ends and the forged lines inside.
func TestSmuggling(t *testing.T) {
	for name, seq := range map[string]string{
		`\n.\n`: "\n.\n", `\r.\r`: "\r.\r", `\r\n.\r`: "\r\n.\r", `\n.\r\n`: "\n.\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{})
			mx := w.mx("mx.example.test", mxtest.Behavior{})
			w.domain("example.test", "mx.example.test")
			body := "Subject: s\r\n\r\nbefore" + seq + "MAIL FROM:<forged@evil.test>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nforged\r\n"
			for _, lmtp := range []bool{false, true} {
				if lmtp {
					if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, body); !strings.HasPrefix(r[0], "250") {
						t.Fatalf("LMTP reply %q", r[0])
					}
				} else if _, r := transact(t, w.smtp, []string{"a@example.test"}, body); !strings.HasPrefix(r, "250") {
					t.Fatalf("SMTP reply %q", r)
				}
			}
			msgs := mx.WaitMessages(t, 2, 5*time.Second)
			time.Sleep(50 * time.Millisecond)
			if n := len(mx.Messages()); n != 2 || mx.MailCount() != 2 {
				t.Fatalf("%d messages, %d MAIL FROM; want 2 and 2", n, mx.MailCount())
			}
			for _, m := range msgs {
				if m.From != "sender@origin.test" {
					t.Errorf("envelope sender %q", m.From)
				}
				d := bytes.ReplaceAll(m.Data, []byte("\r\n"), nil)
				if bytes.ContainsAny(d, "\r\n") {
					t.Errorf("bare CR or LF left: %q", m.Data)
				}
				if !bytes.Contains(m.Data, []byte("MAIL FROM:<forged@evil.test>\r\n")) || !bytes.HasSuffix(m.Data, []byte("forged\r\n")) {
					t.Errorf("forged lines not kept inside the one message: %q", m.Data)
				}
			}
		})
	}
}

func TestEightBitToServerWithout8BITMIME(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx.example.test", mxtest.Behavior{HideExtensions: []string{"8BITMIME"}})
	w.domain("example.test", "mx.example.test")
	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, "Subject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0\r\n")
	if !strings.HasPrefix(r[0], "554 5.6.3") {
		t.Errorf("reply %q, want 554 5.6.3", r[0])
	}
	if mx.MailCount() != 0 {
		t.Errorf("MAIL sent to a server that cannot take 8-bit")
	}
	// A 7-bit message still goes.
	if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody); !strings.HasPrefix(r[0], "250") {
		t.Errorf("7-bit reply %q", r[0])
	}
	if m := mx.Messages(); len(m) != 1 || m[0].MailOpts.Body == smtp.Body8BitMIME {
		t.Errorf("7-bit message: %+v", m)
	}
}

func TestOverrideNoneAllowsCountedPlaintext(t *testing.T) {
	w := newWorld(t, worldOpts{overrides: map[string]policy.Requirement{"legacy.test": {Level: policy.None}}})
	mx := w.mx("mx.legacy.test", mxtest.Behavior{NoSTARTTLS: true})
	w.domain("legacy.test", "mx.legacy.test")
	if r := lmtpTransact(t, w.lmtp, []string{"a@legacy.test"}, simpleBody); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("reply %q", r[0])
	}
	if m := mx.Messages(); len(m) != 1 || m[0].TLS {
		t.Fatalf("stored %+v", m)
	}
	if got := w.metric("caliop_plaintext_deliveries_total", "domain", "legacy.test"); got != 1 {
		t.Errorf("caliop_plaintext_deliveries_total{domain=legacy.test} = %v, want 1", got)
	}
}

// TestConnectionReuse: messages share one connection; after a finished
// transaction the next MAIL needs no RSET (RFC 5321 §4.1.1.4), after an
// unfinished one (every recipient refused) it gets one.
func TestConnectionReuse(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx.example.test", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"nobody@example.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}})
	w.domain("example.test", "mx.example.test")
	for i := 0; i < 3; i++ {
		if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody); !strings.HasPrefix(r[0], "250") {
			t.Fatalf("message %d: %q", i, r[0])
		}
	}
	if n := mx.Connections(); n != 1 {
		t.Errorf("3 messages took %d connections, want 1", n)
	}
	rsets := func() int { return strings.Count(strings.Join(mx.Commands(), "\n"), "RSET") }
	if got := rsets(); got != 0 {
		t.Errorf("RSET sent %d times after finished transactions, want 0", got)
	}
	if r := lmtpTransact(t, w.lmtp, []string{"nobody@example.test"}, simpleBody); !strings.HasPrefix(r[0], "550") {
		t.Fatalf("refused recipient: %q", r[0])
	}
	if r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody); !strings.HasPrefix(r[0], "250") {
		t.Fatalf("message after the refusal: %q", r[0])
	}
	if got := rsets(); got != 1 {
		t.Errorf("RSET sent %d times, want 1 (after the transaction left open)", got)
	}
	if n, m := mx.Connections(), len(mx.Messages()); n != 1 || m != 4 {
		t.Errorf("%d connections, %d messages; want 1 and 4", n, m)
	}
}

// TestStaleConnection checks that a pooled connection the MX closed while
// idle costs nothing: the message goes out on a new connection to the same
// MX, through both listeners.
func TestStaleConnection(t *testing.T) {
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx.example.test", mxtest.Behavior{})
	w.domain("example.test", "mx.example.test")
	send := []func() string{
		func() string { return lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)[0] },
		func() string { _, r := transact(t, w.smtp, []string{"a@example.test"}, simpleBody); return r },
	}
	for i, f := range send {
		if r := f(); !strings.HasPrefix(r, "250") {
			t.Fatalf("message %d before the close: %q", i, r)
		}
		mx.CloseConnections()
		if r := f(); !strings.HasPrefix(r, "250 2.0.0") || !strings.Contains(r, "mx.example.test [127.0.1.1] said") {
			t.Fatalf("message %d after the MX closed the idle connection: %q", i, r)
		}
	}
	// LMTP: first connection, closed, second; SMTP reuses the second,
	// closed, third.
	if n := mx.Connections(); n != 3 {
		t.Errorf("%d connections, want 3 (each stale one replaced once)", n)
	}
	if n := len(mx.Messages()); n != 4 {
		t.Errorf("%d messages stored, want 4", n)
	}
}

func TestDeliveryTimeout(t *testing.T) {
	w := newWorld(t, worldOpts{timeout: time.Second})
	w.mx("mx.example.test", mxtest.Behavior{Delay: 5 * time.Second})
	w.domain("example.test", "mx.example.test")
	start := time.Now()
	r := lmtpTransact(t, w.lmtp, []string{"a@example.test"}, simpleBody)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("reply after %v with a 1s budget", el)
	}
	if !strings.HasPrefix(r[0], "451 4.4.2") {
		t.Errorf("reply %q, want 451 4.4.2", r[0])
	}
}
