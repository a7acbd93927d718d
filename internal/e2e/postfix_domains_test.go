package e2e

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

// TestPostfixLMTPRepliesPerRecipient sends one message to three recipients
// in two domains through Postfix's LMTP client. DESIGN.md invariant 1:
// Caliop delivers each domain in its own downstream transaction and gives
// one reply per recipient (RFC 2033 §4.2), so Postfix records the two
// accepted recipients as sent and the one the MX refused (550 5.1.1) as
// bounced, and its bounce, with the null sender, also goes out through
// Caliop to origin.test's MX.
func TestPostfixLMTPRepliesPerRecipient(t *testing.T) {
	t.Parallel()
	c := startChain(t, mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		"bad@second.test": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"},
	}})
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"default_transport = lmtp:inet:" + c.lmtp,
		"relay_transport = lmtp:inet:" + c.lmtp,
	}})
	marker := "caliop-e2e-" + randomHex(t)
	id := pf.Inject(t, "sender@origin.test", []string{"a@example.test", "b@second.test", "bad@second.test"}, marker)

	c.mx.WaitMessages(t, 3, 30*time.Second) // two copies and the bounce
	pf.WaitQueueEmpty(t, 30*time.Second)

	relay := "relay=127.0.0.1[127.0.0.1]:" + strconv.Itoa(port(t, c.lmtp))
	for _, want := range [][]string{
		{id + ": to=<a@example.test>", relay, "status=sent"},
		{id + ": to=<b@second.test>", relay, "status=sent"},
		{id + ": to=<bad@second.test>", relay, "status=bounced", "550 5.1.1"},
	} {
		if pf.WaitLog(10*time.Second, want...) == "" {
			t.Errorf("postfix log has no line with %q", want)
		}
	}
	if bad := pf.WaitLog(0, id, "status=deferred"); bad != "" {
		t.Errorf("postfix deferred a recipient: %s", bad)
	}

	msgs := c.mx.Messages()
	if len(msgs) != 3 || c.mx.MailCount() != 3 {
		t.Fatalf("MX stored %d messages after %d MAIL commands, want 3 of each: %s", len(msgs), c.mx.MailCount(), describe(msgs))
	}
	byRcpt := map[string]mxtest.Message{}
	for _, m := range msgs {
		byRcpt[strings.Join(m.To, ",")] = m
		if !m.TLS {
			t.Errorf("message to %v reached the MX without TLS", m.To)
		}
	}
	for rcpt, sni := range map[string]string{"a@example.test": "mx.example.test", "b@second.test": "mx.second.test"} {
		m, ok := byRcpt[rcpt]
		if !ok {
			t.Errorf("no message for exactly [%s] at the MX: %s", rcpt, describe(msgs))
			continue
		}
		if m.From != "sender@origin.test" || !strings.Contains(string(m.Data), "Subject: "+marker+"\r\n") {
			t.Errorf("message for %s: from %q, want sender@origin.test and Subject %s:\n%s", rcpt, m.From, marker, m.Data)
		}
		if m.ServerName != sni {
			t.Errorf("message for %s: SNI %q, want %q", rcpt, m.ServerName, sni)
		}
	}
	dsn, ok := byRcpt["sender@origin.test"]
	if !ok {
		t.Fatalf("no bounce for sender@origin.test at the MX: %s", describe(msgs))
	}
	if dsn.From != "" {
		t.Errorf("bounce MAIL FROM = %q, want the null sender", dsn.From)
	}
	for _, want := range []string{"bad@second.test", "5.1.1", marker} {
		if !strings.Contains(string(dsn.Data), want) {
			t.Errorf("bounce does not mention %q:\n%s", want, dsn.Data)
		}
	}
}

// TestPostfixSMTPRelayhostSplitsDomains uses Caliop's SMTP listener as
// Postfix's relayhost and sends one message to two domains. DESIGN.md
// invariant 1: the first recipient fixes the transaction's route, the
// second gets 452 4.5.3 and Postfix sends it in another transaction. Each
// recipient must arrive exactly once, and no MAIL may reach the MX for a
// recipient Caliop refused.
func TestPostfixSMTPRelayhostSplitsDomains(t *testing.T) {
	t.Parallel()
	c := startChain(t, mxtest.Behavior{})
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"relayhost = [127.0.0.1]:" + strconv.Itoa(port(t, c.smtp)),
		"default_transport = smtp",
		"relay_transport = smtp",
		"smtp_tls_security_level = none",
		// The SMTP conversation with Caliop in the log shown on failure.
		"debug_peer_list = 127.0.0.1",
		// "Postfix: at its next queue run": make that within seconds.
		"queue_run_delay = 1s",
		"minimal_backoff_time = 1s",
		"maximal_backoff_time = 2s",
	}})
	marker := "caliop-e2e-" + randomHex(t)
	id := pf.Inject(t, "sender@origin.test", []string{"a@example.test", "b@second.test"}, marker)

	// Postfix's next queue run, within seconds here. Its queue manager
	// can skip a message whose deferral lands while the delivery still
	// holds it ("skipped, still being delivered") and then wait much
	// longer than queue_run_delay: a flush every few seconds stands in
	// for the queue runs that would follow.
	for i := 0; len(c.mx.Messages()) < 2 && i < 60; i++ {
		time.Sleep(500 * time.Millisecond)
		if i%10 == 9 {
			pf.cmd(10*time.Second, "postqueue", "-f")
		}
	}
	c.mx.WaitMessages(t, 2, time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second)

	relay := "relay=127.0.0.1[127.0.0.1]:" + strconv.Itoa(port(t, c.smtp))
	for _, rcpt := range []string{"a@example.test", "b@second.test"} {
		if pf.WaitLog(10*time.Second, id+": to=<"+rcpt+">", relay, "status=sent") == "" {
			t.Errorf("postfix log has no status=sent for %s via %s", rcpt, relay)
		}
	}
	// A deferral, if Postfix logged one, must be Caliop's route split.
	for _, line := range strings.Split(pf.LogText(), "\n") {
		if !strings.Contains(line, id+": to=") {
			continue
		}
		t.Logf("postfix: %s", line)
		if strings.Contains(line, "status=deferred") && !strings.Contains(line, "452 4.5.3") {
			t.Errorf("deferral other than 452 4.5.3: %s", line)
		}
	}

	msgs := c.mx.Messages()
	if len(msgs) != 2 || c.mx.MailCount() != 2 {
		t.Fatalf("MX stored %d messages after %d MAIL commands, want 2 of each: %s", len(msgs), c.mx.MailCount(), describe(msgs))
	}
	var rcpts []string
	for _, m := range msgs {
		if len(m.To) != 1 {
			t.Errorf("one downstream transaction carried %v: a route holds one domain", m.To)
		}
		rcpts = append(rcpts, m.To...)
		if !m.TLS || m.From != "sender@origin.test" || !strings.Contains(string(m.Data), "Subject: "+marker+"\r\n") {
			t.Errorf("message to %v: TLS %v, from %q; want TLS, sender@origin.test, Subject %s", m.To, m.TLS, m.From, marker)
		}
		if rc := headerFields(strings.SplitN(string(m.Data), "\r\n\r\n", 2)[0], "Received"); len(rc) == 0 || !strings.Contains(rc[0], "by relay.test (Caliop) with ESMTP") {
			t.Errorf("message to %v: first Received is not Caliop's ESMTP one: %q", m.To, rc)
		}
	}
	slices.Sort(rcpts)
	if !slices.Equal(rcpts, []string{"a@example.test", "b@second.test"}) {
		t.Errorf("recipients at the MX = %v, want each of a@example.test, b@second.test once", rcpts)
	}
}

func describe(msgs []mxtest.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString("\n  from <" + m.From + "> to " + strings.Join(m.To, ",") + " tls=" + strconv.FormatBool(m.TLS))
	}
	return b.String()
}

// TestPostfixLMTPLargeBodyPreserved sends a 3 MiB message (more than
// Caliop's default 1 MiB memory buffer, so the body spills to a file) with
// lines that need dot-stuffing, and checks that the MX receives the body
// byte for byte as the client submitted it to Postfix.
func TestPostfixLMTPLargeBodyPreserved(t *testing.T) {
	t.Parallel()
	c := startChain(t, mxtest.Behavior{})
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"default_transport = lmtp:inet:" + c.lmtp,
		"message_size_limit = 20000000",
	}})
	marker := "caliop-e2e-" + randomHex(t)
	var body strings.Builder
	for i := 0; body.Len() < 3<<20; i++ {
		switch i % 7 {
		case 0:
			body.WriteString(".\r\n") // a lone dot: the end of DATA unless stuffed
		case 1:
			body.WriteString("..leading dots " + strconv.Itoa(i) + "\r\n")
		case 2:
			body.WriteString("\r\n")
		default:
			body.WriteString(marker + " line " + strconv.Itoa(i) + " " + strings.Repeat("abcdefghij", 7) + "\r\n")
		}
	}
	header := "From: <sender@origin.test>\r\nTo: <big@example.test>\r\nSubject: " + marker + "\r\nMessage-ID: <" + marker + "@origin.test>\r\n"
	submit(t, pf.Smtpd, "sender@origin.test", "big@example.test", header+"\r\n"+body.String())

	msgs := c.mx.WaitMessages(t, 1, 60*time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("MX stored %d messages, want 1: %s", len(msgs), describe(msgs))
	}
	_, got, ok := strings.Cut(string(msgs[0].Data), "\r\n\r\n")
	if !ok {
		t.Fatal("stored message has no body")
	}
	if got != body.String() {
		i := 0
		for i < min(len(got), body.Len()) && got[i] == body.String()[i] {
			i++
		}
		t.Errorf("body differs at byte %d of %d (got %d bytes): got %q, want %q", i, body.Len(), len(got),
			got[i:min(len(got), i+60)], body.String()[i:min(body.Len(), i+60)])
	}
	if !msgs[0].TLS {
		t.Error("message reached the MX without TLS")
	}
}

// submit sends one message to an SMTP server with go-smtp's client.
func submit(t *testing.T, addr, from, to, data string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	cl := smtp.NewClient(conn)
	defer cl.Close()
	if err := cl.Hello("client.origin.test"); err != nil {
		t.Fatal(err)
	}
	if err := cl.SendMail(from, []string{to}, strings.NewReader(data)); err != nil {
		t.Fatalf("submit to %s: %v", addr, err)
	}
	cl.Quit()
}

// TestPostfixLMTPNoSTARTTLSDefers points the MX at a server without
// STARTTLS. DESIGN.md invariants 2 and 3: Caliop never delivers in
// plaintext and reports the policy failure as temporary (4.7.x), so
// Postfix keeps the message queued and no MAIL reaches the MX.
func TestPostfixLMTPNoSTARTTLSDefers(t *testing.T) {
	t.Parallel()
	c := startChain(t, mxtest.Behavior{NoSTARTTLS: true})
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"default_transport = lmtp:inet:" + c.lmtp,
	}})
	marker := "caliop-e2e-" + randomHex(t)
	id := pf.Inject(t, "sender@origin.test", []string{"rcpt@example.test"}, marker)

	line := pf.WaitLog(30*time.Second, id+": to=<rcpt@example.test>", "status=")
	if line == "" {
		t.Fatalf("postfix logged no delivery status for %s within 30s", id)
	}
	t.Logf("postfix: %s", line)
	if !strings.Contains(line, "status=deferred") || !strings.Contains(line, "dsn=4.7.") {
		t.Errorf("postfix status = %s\nwant status=deferred with dsn=4.7.x", line)
	}
	if n := c.mx.MailCount(); n != 0 {
		t.Errorf("MX without STARTTLS got %d MAIL commands, want 0", n)
	}
	if msgs := c.mx.Messages(); len(msgs) != 0 {
		t.Errorf("MX without STARTTLS stored %d messages: %s", len(msgs), describe(msgs))
	}
	out, empty, err := pf.Queue()
	if err != nil || empty || !strings.Contains(out, id) {
		t.Errorf("postfix queue should still hold %s (err %v):\n%s", id, err, out)
	}
}

// TestPostfixSMTPRelayhostGreylistedFirst: Postfix as relay-host client
// sends one message to a recipient whose MX greylists (450 at RCPT) and
// one whose MX accepts, the greylisted one first. The greylisted
// recipient must not fix the route: the accepting one is delivered at
// the first attempt, once, and only the greylisted one is deferred.
func TestPostfixSMTPRelayhostGreylistedFirst(t *testing.T) {
	t.Parallel()
	const grey, ok = "a@example.test", "b@second.test" // first by address and by domain
	c := startChain(t, mxtest.Behavior{RcptReply: map[string]*smtp.SMTPError{
		grey: {Code: 450, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "greylisted, try again later"},
	}})
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"relayhost = [127.0.0.1]:" + strconv.Itoa(port(t, c.smtp)),
		"default_transport = smtp",
		"relay_transport = smtp",
		"smtp_tls_security_level = none",
	}})
	marker := "caliop-e2e-" + randomHex(t)
	id := pf.Inject(t, "sender@origin.test", []string{grey, ok}, marker)

	c.mx.WaitMessages(t, 1, 30*time.Second)
	relay := "relay=127.0.0.1[127.0.0.1]:" + strconv.Itoa(port(t, c.smtp))
	if pf.WaitLog(10*time.Second, id+": to=<"+ok+">", relay, "status=sent") == "" {
		t.Errorf("postfix did not deliver %s at the first attempt", ok)
	}
	if pf.WaitLog(10*time.Second, id+": to=<"+grey+">", "status=deferred", "450 4.7.1") == "" {
		t.Errorf("postfix did not defer %s with the MX's 450", grey)
	}
	if line := pf.WaitLog(0, id+": to=<"+ok+">", "status=deferred"); line != "" {
		t.Errorf("the accepting recipient was deferred: %s", line)
	}
	msgs := c.mx.Messages()
	if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{ok}) || !strings.Contains(string(msgs[0].Data), "Subject: "+marker+"\r\n") {
		t.Errorf("MX stored %s; want one message to %s", describe(msgs), ok)
	}
}
