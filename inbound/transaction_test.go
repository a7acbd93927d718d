package inbound

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/readmetest"
	"github.com/caliop/relay/internal/testworld/mxtest"
)

func TestForeignRecipientIsRefusedAndNeverForwarded(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.envelope("alice@sender.example", "bob@example.org")
	for _, to := range []string{"eve@other.example", "eve@example.org.other.example", "eve@[127.0.0.1]", "eve@sub.example.org"} {
		c.cmd("RCPT TO:<"+to+">", 550, "5.7.1 relaying denied")
	}
	// A U-label of an operator domain is the same domain (IDNA).
	h2, mx2 := startMX(t, mxtest.Behavior{SMTPUTF8: true}, func(o *Options) { o.Domains = []string{"xn--bcher-kva.example"} })
	c2 := h2.dial()
	c2.ehlo()
	c2.cmd("MAIL FROM:<a@sender.example> SMTPUTF8", 250, "")
	c2.cmd("RCPT TO:<anna@BÜCHER.example>", 250, "")
	c2.cmd("RCPT TO:<anna@bücher.example.org>", 550, "5.7.1")

	if got := commandsWith(mx, "RCPT"); len(got) != 1 || got[0] != "RCPT TO:<bob@example.org>" {
		t.Errorf("next hop saw RCPT %q, want only bob@example.org", got)
	}
	if got := commandsWith(mx2, "RCPT"); len(got) != 1 {
		t.Errorf("IDN recipient: next hop saw %q", got)
	}
}

func TestNextHopDownIsTemporaryAfterGreetingAndEHLO(t *testing.T) {
	t.Parallel()
	h := start(t, downAddr(t), nil)
	c := h.dial() // 220 although the next hop is down (invariant 4)
	c.ehlo()
	c.cmd("MAIL FROM:<alice@sender.example>", 451, "4.3.0")
	c.cmd("RCPT TO:<bob@example.org>", 502, "") // go-smtp: no MAIL
	c.cmd("QUIT", 221, "")
	if got := h.stats.Sessions(); len(got) != 0 {
		t.Errorf("a MAIL the next hop never saw was counted: %v", got)
	}
}

// TestNextHopRepliesArePassedOn: MAIL, RCPT and the end of DATA get the
// next hop's own reply, code, enhanced code and text.
func TestNextHopRepliesArePassedOn(t *testing.T) {
	t.Parallel()
	e := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	tests := []struct {
		name   string
		b      mxtest.Behavior
		at     string // MAIL, RCPT or DATA
		code   int
		prefix string
	}{
		{"MAIL 4xx", mxtest.Behavior{MailReply: e(450, smtp.EnhancedCode{4, 7, 1}, "greylisted, come back later")}, "MAIL", 450, "4.7.1 greylisted, come back later"},
		{"MAIL 5xx", mxtest.Behavior{MailReply: e(553, smtp.EnhancedCode{5, 7, 1}, "sender rejected")}, "MAIL", 553, "5.7.1 sender rejected"},
		{"MAIL 421 becomes 451", mxtest.Behavior{MailReply: e(421, smtp.EnhancedCode{4, 3, 2}, "busy")}, "MAIL", 451, "4.3.2 busy"},
		{"RCPT 5xx", mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{"bob@example.org": e(550, smtp.EnhancedCode{5, 1, 1}, "no such user")}}, "RCPT", 550, "5.1.1 no such user"},
		{"DATA 5xx", mxtest.Behavior{DataReply: e(554, smtp.EnhancedCode{5, 7, 1}, "spam detected")}, "DATA", 554, "5.7.1 spam detected"},
		{"DATA 4xx", mxtest.Behavior{DataReply: e(452, smtp.EnhancedCode{4, 3, 1}, "disk full")}, "DATA", 452, "4.3.1 disk full"},
		{"DATA 250 verbatim", mxtest.Behavior{}, "DATA", 250, "2.0.0 OK: queued"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, tc.b, nil)
			c := h.dial()
			c.ehlo()
			if tc.at == "MAIL" {
				c.cmd("MAIL FROM:<alice@sender.example>", tc.code, tc.prefix)
				return
			}
			c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
			if tc.at == "RCPT" {
				c.cmd("RCPT TO:<bob@example.org>", tc.code, tc.prefix)
				if n := len(commandsWith(mx, "DATA")) + len(commandsWith(mx, "BDAT")); n != 0 {
					t.Errorf("body sent without recipients")
				}
				return
			}
			c.cmd("RCPT TO:<bob@example.org>", 250, "")
			if code, msg := c.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != tc.code || msg != tc.prefix {
				t.Errorf("end of DATA: %d %q, want %d %q", code, msg, tc.code, tc.prefix)
			}
		})
	}
}

func TestNextHopVanishingInDataIsTemporary(t *testing.T) {
	t.Parallel()
	for _, hide := range [][]string{nil, {"CHUNKING"}} {
		t.Run(fmt.Sprint("hide ", hide), func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, mxtest.Behavior{DropInData: true, HideExtensions: hide}, nil)
			c := h.dial()
			c.ehlo()
			c.envelope("alice@sender.example", "bob@example.org")
			code, msg := c.data("Subject: x\r\n\r\n" + strings.Repeat("line\r\n", 5000) + ".\r\n")
			if code != 451 || !(strings.HasPrefix(msg, "4.4.2") || strings.HasPrefix(msg, "4.3.0")) {
				t.Errorf("end of DATA: %d %q, want 451 4.4.2 or 4.3.0", code, msg)
			}
			if n := len(mx.Messages()); n != 0 {
				t.Errorf("next hop stored %d messages", n)
			}
			// The session goes on, with a new next hop connection.
			c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
		})
	}
}

// TestDeliveredMessage: the next hop gets the Received header and the
// body with every line ending CRLF, whatever the client sent; a "\n.\n"
// inside the body ends nothing (SMTP smuggling).
func TestDeliveredMessage(t *testing.T) {
	t.Parallel()
	const sent = "Subject: t\r\n\r\nline1\n.\nMAIL FROM:<evil@x.example>\r\nbare\rcr\r\n..dot\r\nend\n.\nx\r\n.\r\n"
	const want = "Subject: t\r\n\r\nline1\r\n.\r\nMAIL FROM:<evil@x.example>\r\nbare\r\ncr\r\n.dot\r\nend\r\n.\r\nx\r\n"
	tests := []struct {
		name    string
		tls     bool
		hide    []string
		command string // to the next hop
	}{
		{"plaintext, BDAT to the next hop", false, nil, "BDAT"},
		{"STARTTLS, DATA to the next hop", true, []string{"CHUNKING"}, "DATA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, mxtest.Behavior{HideExtensions: tc.hide}, nil)
			c := h.dial()
			c.ehlo()
			if tc.tls {
				c.startTLS(h.ca)
				c.ehlo()
			}
			c.envelope("alice@sender.example", "bob@example.org", "carol@EXAMPLE.ORG")
			c.cmd("DATA", 354, "")
			c.send(sent)
			c.expect(250, "2.0.0 OK: queued")

			msgs := mx.Messages()
			if len(msgs) != 1 || mx.MailCount() != 1 {
				t.Fatalf("next hop: %d messages, %d MAIL; want 1 and 1", len(msgs), mx.MailCount())
			}
			m := msgs[0]
			if m.From != "alice@sender.example" || strings.Join(m.To, ",") != "bob@example.org,carol@example.org" {
				t.Errorf("envelope %q → %q", m.From, m.To)
			}
			received, body := splitReceived(t, m.Data)
			if body != want {
				t.Errorf("body at the next hop:\n%q\nwant\n%q", body, want)
			}
			wantRcv := []string{"Received: from client.example ([127.0.0.1])", "by mx.caliop.test (Caliop) with ESMTP id ", "Sat, 01 Mar 2025 12:00:00 +0000\r\n"}
			if tc.tls {
				wantRcv = append(wantRcv[:1], "\r\n\t(using TLSv1.3 with cipher TLS_", "with ESMTPS id", wantRcv[2])
			}
			for _, w := range wantRcv {
				if !strings.Contains(received, w) {
					t.Errorf("Received header lacks %q:\n%s", w, received)
				}
			}
			if len(commandsWith(mx, tc.command)) != 1 {
				t.Errorf("next hop commands %q: want one %s", mx.Commands(), tc.command)
			}
		})
	}
}

func TestMailParameters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		b      mxtest.Behavior
		mail   string
		code   int
		prefix string
		params string // MAIL as the next hop saw it, "" if not sent
	}{
		{"8BITMIME passed on", mxtest.Behavior{}, "MAIL FROM:<a@s.example> BODY=8BITMIME SIZE=100", 250, "", "MAIL FROM:<a@s.example> SIZE=100 BODY=8BITMIME"},
		{"8BITMIME not offered", mxtest.Behavior{HideExtensions: []string{"8BITMIME"}}, "MAIL FROM:<a@s.example> BODY=8BITMIME", 554, "5.6.3", ""},
		{"SMTPUTF8 passed on", mxtest.Behavior{SMTPUTF8: true}, "MAIL FROM:<a@s.example> SMTPUTF8", 250, "", "MAIL FROM:<a@s.example> SMTPUTF8"},
		{"SMTPUTF8 not offered", mxtest.Behavior{}, "MAIL FROM:<a@s.example> SMTPUTF8", 554, "5.6.7", ""},
		{"SIZE over the limit", mxtest.Behavior{}, "MAIL FROM:<a@s.example> SIZE=2000", 552, "5.3.4", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, tc.b, func(o *Options) { o.MaxMessageSize = 1000 })
			c := h.dial()
			if ehlo := c.ehlo(); !strings.Contains(ehlo, "\nSIZE 1000") || !strings.Contains(ehlo, "\n8BITMIME") {
				t.Errorf("EHLO: %q", ehlo)
			}
			c.cmd(tc.mail, tc.code, tc.prefix)
			got := commandsWith(mx, "MAIL")
			if tc.params == "" && len(got) != 0 || tc.params != "" && (len(got) != 1 || got[0] != tc.params) {
				t.Errorf("next hop saw %q, want %q", got, tc.params)
			}
		})
	}
}

func TestBodyOverSizeLimitNeverReachesNextHop(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, func(o *Options) { o.MaxMessageSize = 1000 })
	c := h.dial()
	c.ehlo()
	c.envelope("alice@sender.example", "bob@example.org")
	if code, msg := c.data(strings.Repeat("x", 70) + "\r\n" + strings.Repeat("y\r\n", 600) + ".\r\n"); code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Errorf("end of DATA: %d %q, want 552 5.3.4", code, msg)
	}
	c.cmd("NOOP", 250, "") // the session goes on
	if len(commandsWith(mx, "BDAT"))+len(commandsWith(mx, "DATA")) != 0 {
		t.Errorf("body sent: %q", mx.Commands())
	}
}

func TestNextHopReusedThenRedialled(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	for i := range 3 {
		if i == 2 {
			mx.CloseConnections() // as an idle timeout at the next hop
		}
		c.envelope("alice@sender.example", "bob@example.org")
		if code, _ := c.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 {
			t.Fatalf("message %d: %d", i, code)
		}
	}
	if n := mx.Connections(); n != 2 {
		t.Errorf("next hop connections: %d, want 2 (reused once, redialled once)", n)
	}
	if n := len(mx.Messages()); n != 3 {
		t.Errorf("messages: %d", n)
	}
}

// TestBodyIsNeverReadAsCommands: inside DATA and BDAT, lines such as
// STARTTLS are body; after the body, commands are commands again, also
// pipelined (RFC 2920).
func TestBodyIsNeverReadAsCommands(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.send("MAIL FROM:<alice@sender.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send("Subject: x\r\n\r\nSTARTTLS\r\nEHLO x\r\n.\r\n")
	c.expect(250, "2.0.0")
	chunk := "Subject: y\r\n\r\nSTARTTLS\r\nMAIL FROM:<e@x.example>\r\n"
	c.envelope("alice@sender.example", "bob@example.org")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	c.expect(250, "2.0.0")
	if ehlo := c.ehlo(); !strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("EHLO after the bodies: %q", ehlo)
	}
	c.startTLS(h.ca)
	msgs := mx.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages", len(msgs))
	}
	for _, m := range msgs {
		if _, body := splitReceived(t, m.Data); !strings.Contains(body, "\r\nSTARTTLS\r\n") {
			t.Errorf("body %q", body)
		}
	}
}

// TestRepliesAsDocumented: the replies to MAIL and RCPT are what the
// README's table says, accepted and refused by the next hop.
func TestRepliesAsDocumented(t *testing.T) {
	t.Parallel()
	h, _ := startMX(t, mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"gone@example.org": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
	}}, nil)
	v := map[string]string{"SENDER": "alice@sender.example", "RECIPIENT": "bob@example.org", "CODE": "550", "X.Y.Z": "5.1.1", "TEXT": "no such user"}
	c := h.dial()
	c.ehlo()
	for _, step := range []struct{ cmd, row string }{
		{"MAIL FROM:<alice@sender.example>", "MAIL accepted"},
		{"RCPT TO:<gone@example.org>", "RCPT refused by the next hop"},
		{"RCPT TO:<bob@example.org>", "RCPT accepted"},
	} {
		want := readmetest.Fill(readmetest.Reply(t, "..", step.row), v)
		c.send(step.cmd)
		code, msg := c.read()
		if got := fmt.Sprintf("%d %s", code, msg); got != want {
			t.Errorf("%s → %q; README says %q", step.cmd, got, want)
		}
	}
}

// TestNoValidRecipients: DATA after every RCPT was refused gets 554 5.5.1
// (RFC 5321 §3.3), not go-smtp's 502.
func TestNoValidRecipients(t *testing.T) {
	t.Parallel()
	h, _ := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
	c.cmd("RCPT TO:<eve@elsewhere.example>", 550, "5.7.1")
	c.cmd("DATA", 554, "5.5.1 No valid recipients")
	c.cmd("NOOP", 250, "")
}
