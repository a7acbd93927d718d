package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/dnstest"
	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestPostfixLMTPToTLSDestination sends one message through the path
// DESIGN.md recommends: a real Postfix with
// default_transport = lmtp:inet:<caliop>, Caliop, and a destination MX
// that offers STARTTLS. Caliop finds the MX through the fake DNS, must
// deliver over TLS (outbound.default: encrypt), add its Received header,
// and answer Postfix 250 only after the MX did, so Postfix's queue empties
// and the MX holds exactly one copy.
func TestPostfixLMTPToTLSDestination(t *testing.T) {
	t.Parallel()
	c := startChain(t, mxtest.Behavior{})
	mx, lmtp, proc := c.mx, c.lmtp, c.caliop
	pf := startPostfix(t, c.bin, postfixOptions{Main: []string{
		"default_transport = lmtp:inet:" + lmtp,
		"relay_transport = lmtp:inet:" + lmtp,
		"lmtp_destination_concurrency_limit = 100",
		"lmtp_send_xforward_command = yes",
	}})

	marker := "caliop-e2e-" + randomHex(t)
	queueID := pf.Inject(t, "sender@origin.test", []string{"rcpt@example.test"}, marker)

	mx.WaitMessages(t, 1, 30*time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second)
	// Postfix logs the LMTP reply it got from Caliop for the recipient.
	sent := pf.WaitLog(10*time.Second, queueID+": to=<rcpt@example.test>", "relay=127.0.0.1[127.0.0.1]:"+strconv.Itoa(port(t, lmtp)), "status=sent")
	if sent == "" {
		t.Errorf("postfix log has no status=sent line for %s via %s", queueID, lmtp)
	}
	if bad := pf.WaitLog(0, queueID, "status=deferred"); bad != "" {
		t.Errorf("postfix deferred the message at least once: %s", bad)
	}
	// The two logs join: Postfix's line names Caliop's id, and Caliop's
	// line for that id carries Postfix's queue id (XFORWARD IDENT).
	if m := regexp.MustCompile(`\[caliop ([0-9a-f]{12})\]`).FindStringSubmatch(sent); m == nil {
		t.Errorf("postfix's status=sent line does not name Caliop's id: %s", sent)
	} else if waitOutput(proc, `"id":"`+m[1]+`"`, 5*time.Second) {
		joined := false
		for _, line := range strings.Split(proc.Output.String(), "\n") {
			joined = joined || strings.Contains(line, `"id":"`+m[1]+`"`) && strings.Contains(line, `"queue_id":"`+queueID+`"`)
		}
		if !joined {
			t.Errorf("caliop's log line for id %s lacks queue_id %s:\n%s", m[1], queueID, proc.Output.String())
		}
	} else {
		t.Errorf("caliop's log has no line for id %s", m[1])
	}

	// The MX answered 250 before Postfix's queue emptied; anything
	// stored after this would be a duplicate.
	msgs := mx.Messages()
	if len(msgs) != 1 || mx.MailCount() != 1 {
		t.Fatalf("MX stored %d messages after %d MAIL commands, want exactly 1 of each", len(msgs), mx.MailCount())
	}
	got := msgs[0]
	if got.From != "sender@origin.test" {
		t.Errorf("MAIL FROM at the MX = %q, want sender@origin.test", got.From)
	}
	if !slices.Equal(got.To, []string{"rcpt@example.test"}) {
		t.Errorf("RCPT TO at the MX = %q, want [rcpt@example.test]", got.To)
	}
	if !got.TLS {
		t.Errorf("message reached the MX without TLS (DESIGN.md invariant 2)")
	}
	if got.ServerName != "mx.example.test" {
		t.Errorf("SNI at the MX = %q, want mx.example.test", got.ServerName)
	}
	data := string(got.Data)
	header, body, ok := strings.Cut(data, "\r\n\r\n")
	if !ok {
		t.Fatalf("stored message has no header/body separator:\n%s", data)
	}
	if !strings.Contains(header, "\r\nSubject: "+marker+"\r\n") {
		t.Errorf("stored header lacks Subject: %s:\n%s", marker, header)
	}
	if !strings.Contains(body, "body of "+marker) {
		t.Errorf("stored body lacks the marker:\n%s", body)
	}
	received := headerFields(header, "Received")
	if len(received) < 2 {
		t.Fatalf("want Caliop's and Postfix's Received headers, got %d:\n%s", len(received), header)
	}
	// RFC 5321 §4.4: each hop prepends its trace header, so Caliop's
	// (the last hop) is first and Postfix's comes next.
	if !strings.Contains(received[0], "by relay.test (Caliop) with LMTP") {
		t.Errorf("first Received is not Caliop's LMTP one:\n%s", received[0])
	}
	if !strings.Contains(received[0], "from origin.test") {
		t.Errorf("Caliop's Received does not name Postfix's LHLO origin.test:\n%s", received[0])
	}
	if !strings.Contains(received[1], "by origin.test (Postfix)") {
		t.Errorf("second Received is not Postfix's:\n%s", received[1])
	}
	if exited, err := proc.Exited(); exited {
		t.Errorf("caliop exited during the test: %v", err)
	}
}

// chain is the part of the path behind Postfix: fake DNS, Caliop with
// both listeners, and one destination MX server (127.0.0.1, mxtest) that
// plays the MX of example.test, second.test and origin.test (where
// Postfix's bounces go), so that one mx_port serves them all.
type chain struct {
	bin    map[string]string // real components, by command name
	dns    *dnstest.Server
	mx     *mxtest.Server
	caliop *Process
	lmtp   string
	smtp   string
}

func startChain(t *testing.T, b mxtest.Behavior) *chain {
	t.Helper()
	c := &chain{bin: requireComponents(t, "root", "postfix", "postconf", "postqueue", "swaks")}
	bin := buildCaliop(t)
	ca := testpki.NewCA(t)
	c.mx = mxtest.Start(t, "mx.example.test", ca, b)
	c.dns = dnstest.Start(t)
	for _, d := range []string{"example.test", "second.test", "origin.test"} {
		c.dns.Add(
			d+". 60 IN MX 10 mx."+d+".",
			"mx."+d+". 60 IN A 127.0.0.1",
		)
	}
	c.lmtp, c.smtp = freeAddr(t), freeAddr(t)
	c.caliop = startCaliop(t, bin, Config{
		Hostname: "relay.test",
		DNS:      c.dns.Addr,
		LMTP:     c.lmtp,
		SMTP:     c.smtp,
		MXPort:   port(t, c.mx.Addr),
		Default:  "encrypt",
	})
	return c
}

// headerFields returns the unfolded values of every field named name, in
// order, from a CRLF message header.
func headerFields(header, name string) []string {
	var out []string
	lines := strings.Split(header, "\r\n")
	for i := 0; i < len(lines); i++ {
		k, v, ok := strings.Cut(lines[i], ":")
		if !ok || !strings.EqualFold(k, name) {
			continue
		}
		for i+1 < len(lines) && (strings.HasPrefix(lines[i+1], " ") || strings.HasPrefix(lines[i+1], "\t")) {
			i++
			v += " " + strings.TrimSpace(lines[i])
		}
		out = append(out, strings.TrimSpace(v))
	}
	return out
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port of %q: %v", addr, err)
	}
	return n
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
