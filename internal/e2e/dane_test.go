package e2e

import (
	"bufio"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"github.com/caliop/relay/internal/testworld/testpki"
)

// TestDANEWithDNSSEC runs the real caliop binary against a validating
// unbound in front of knot (StartDNSSEC) and fake MXs on 127.0.3.N, all
// on one port that Caliop dials as outbound.mx_port, and checks DANE
// (RFC 7672) end to end, one LMTP message per destination domain:
//
//   - good.example.test (signed): mx1's TLSA 3 1 1 matches the key of its
//     self-signed certificate for another name: delivered under DANE-EE,
//     which ignores names and issuers (RFC 7672 §3.1.1).
//   - wrong.example.test (signed): mx2's certificate is issued by the test
//     CA for mx2.example.test, but its TLSA 3 1 1 names another key:
//     451 4.7.5, and no MAIL FROM reaches mx2 (RFC 7672 §2.2, DESIGN.md).
//   - bogus.test (signed, wrong trust anchor: SERVFAIL): 451 4.4.3, mx3
//     never contacted.
//   - insecure.test (unsigned): a non-matching TLSA of an insecure zone
//     is ignored (RFC 7672 §2.2.2): delivered under the default.
func TestDANEWithDNSSEC(t *testing.T) {
	t.Parallel()
	bins := requireComponents(t, "knotd", "unbound")
	start := time.Now()
	bin := buildCaliop(t)
	ca := testpki.NewCA(t)

	// mx1: self-signed, for a name that is not mx1's: only DANE-EE can
	// accept it (and encrypt, which the log check tells apart).
	mx1Cert := ca.Leaf(t, testpki.LeafOptions{Names: []string{"not-mx1.invalid"}, SelfSigned: true})
	// mx2: valid from the test CA for its own name; its TLSA names other.
	mx2Cert := ca.Leaf(t, testpki.LeafOptions{Names: []string{"mx2.example.test"}})
	other := ca.Leaf(t, testpki.LeafOptions{Names: []string{"other.invalid"}})
	if daneSPKI(mx1Cert) == daneSPKI(other) || daneSPKI(mx2Cert) == daneSPKI(other) {
		t.Fatal("two test keys have the same SPKI digest")
	}

	hosts := []string{"127.0.3.1", "127.0.3.2", "127.0.3.3", "127.0.3.4"}
	p := daneCommonPort(t, hosts)
	listen := func(i int) string { return net.JoinHostPort(hosts[i], strconv.Itoa(p)) }
	mx1 := mxtest.Start(t, "mx1.example.test", ca, mxtest.Behavior{Cert: &mx1Cert, Listen: listen(0)})
	mx2 := mxtest.Start(t, "mx2.example.test", ca, mxtest.Behavior{Cert: &mx2Cert, Listen: listen(1)})
	mx3 := mxtest.Start(t, "mx3.bogus.test", ca, mxtest.Behavior{Listen: listen(2)})
	mx4 := mxtest.Start(t, "mx4.insecure.test", ca, mxtest.Behavior{Listen: listen(3)})

	d := StartDNSSEC(t, "example.test", []string{
		"good.example.test. IN MX 10 mx1.example.test.",
		"mx1.example.test. IN A 127.0.3.1",
		"_25._tcp.mx1.example.test. IN TLSA 3 1 1 " + daneSPKI(mx1Cert),
		"wrong.example.test. IN MX 10 mx2.example.test.",
		"mx2.example.test. IN A 127.0.3.2",
		"_25._tcp.mx2.example.test. IN TLSA 3 1 1 " + daneSPKI(other),
	}, DNSSECOptions{
		Bogus: []DNSSECZone{{Name: "bogus.test", Records: []string{
			"bogus.test. IN MX 10 mx3.bogus.test.",
			"mx3.bogus.test. IN A 127.0.3.3",
		}}},
		Insecure: []DNSSECZone{{Name: "insecure.test", Records: []string{
			"insecure.test. IN MX 10 mx4.insecure.test.",
			"mx4.insecure.test. IN A 127.0.3.4",
			"_25._tcp.mx4.insecure.test. IN TLSA 3 1 1 " + daneSPKI(other),
		}}},
		Knotd:   bins["knotd"],
		Unbound: bins["unbound"],
	})

	lmtp := freeAddr(t)
	out := daneStartCaliop(t, bin, Config{
		Hostname:        "relay.test",
		DNS:             d.Resolver,
		LMTP:            lmtp,
		MXPort:          p,
		Default:         "encrypt",
		DeliveryTimeout: 20 * time.Second,
	})
	t.Logf("DNSSEC and Caliop ready after %v (resolver %s, MX port %d)", time.Since(start).Round(time.Millisecond), d.Resolver, p)

	t.Run("good", func(t *testing.T) {
		rcpt := "rcpt@good.example.test"
		marker := "dane-good-" + randomHex(t)
		r := daneLMTPSend(t, lmtp, "a@sender.test", rcpt, marker)
		wantMX := "mx1.example.test [127.0.3.1]"
		if r.Code != 250 || !strings.HasPrefix(r.Enhanced, "2.") || !strings.Contains(r.Text, wantMX) {
			t.Fatalf("reply for %s = %s; want 250 2.x.x naming %s", rcpt, r, wantMX)
		}
		msgs := mx1.Messages()
		if len(msgs) != 1 || mx1.MailCount() != 1 {
			t.Fatalf("mx1 stored %d messages after %d MAIL commands, want 1 of each", len(msgs), mx1.MailCount())
		}
		m := msgs[0]
		if m.From != "a@sender.test" || !slices.Equal(m.To, []string{rcpt}) {
			t.Errorf("envelope at mx1 = %q -> %q, want a@sender.test -> [%s]", m.From, m.To, rcpt)
		}
		if !m.TLS || m.ServerName != "mx1.example.test" {
			t.Errorf("mx1 got the message with TLS %v, SNI %q; want TLS, SNI mx1.example.test", m.TLS, m.ServerName)
		}
		if !strings.Contains(string(m.Data), "Subject: "+marker+"\r\n") {
			t.Errorf("stored message lacks Subject: %s:\n%s", marker, m.Data)
		}
		// Under encrypt the self-signed certificate would pass too: the
		// attempt line tells that DANE decided.
		a := daneAttempt(t, out, "good.example.test")
		if a["mx"] != "mx1.example.test" || a["addr"] != listen(0) || a["policy"] != "dane" ||
			!strings.HasPrefix(fmt.Sprint(a["required"]), "dane") || a["proved"] != "dane" || a["code"] != 250.0 {
			t.Errorf("delivery attempt for good.example.test = %v; want mx1.example.test at %s, policy, required and proved dane, code 250", a, listen(0))
		}
	})

	t.Run("wrong", func(t *testing.T) {
		rcpt := "rcpt@wrong.example.test"
		r := daneLMTPSend(t, lmtp, "a@sender.test", rcpt, "dane-wrong-"+randomHex(t))
		// The reply names the MX, the RFC 8460 result type, the TLSA
		// RRset (by its base domain) and the digest the leaf would need.
		for _, want := range []string{"mx2.example.test [127.0.3.2]", "validation-failure", "TLSA mx2.example.test", "3 1 1 " + daneSPKI(mx2Cert)} {
			if r.Code != 451 || r.Enhanced != "4.7.5" || !strings.Contains(r.Text, want) {
				t.Errorf("reply for %s = %s; want 451 4.7.5 with %q", rcpt, r, want)
			}
		}
		if n := mx2.MailCount(); n != 0 {
			t.Errorf("mx2 saw %d MAIL commands; want none: its certificate does not match the TLSA records", n)
		}
		if n := len(mx2.Messages()); n != 0 {
			t.Errorf("mx2 stored %d messages, want 0", n)
		}
		// Caliop did reach mx2 and refused it after the handshake.
		if n := mx2.Connections(); n < 1 {
			t.Errorf("mx2 accepted %d connections; want at least 1 (the TLS handshake DANE refused)", n)
		}
		a := daneAttempt(t, out, "wrong.example.test")
		if a["mx"] != "mx2.example.test" || a["policy"] != "dane" || !strings.HasPrefix(fmt.Sprint(a["required"]), "dane") || a["code"] != 451.0 {
			t.Errorf("delivery attempt for wrong.example.test = %v; want mx2.example.test, policy and required dane, code 451", a)
		}
	})

	t.Run("bogus", func(t *testing.T) {
		rcpt := "rcpt@bogus.test"
		r := daneLMTPSend(t, lmtp, "a@sender.test", rcpt, "dane-bogus-"+randomHex(t))
		if r.Code != 451 || r.Enhanced != "4.4.3" || !strings.Contains(r.Text, "bogus.test") {
			t.Errorf("reply for %s = %s; want 451 4.4.3 (DNS failure) naming bogus.test", rcpt, r)
		}
		if c, n := mx3.Connections(), mx3.MailCount(); c != 0 || n != 0 {
			t.Errorf("mx3 accepted %d connections and %d MAIL commands; want none: its zone is bogus", c, n)
		}
		if a := daneAttemptNow(out, "bogus.test"); a != nil {
			t.Errorf("delivery attempted for bogus.test: %v", a)
		}
	})

	t.Run("insecure", func(t *testing.T) {
		rcpt := "rcpt@insecure.test"
		marker := "dane-insecure-" + randomHex(t)
		r := daneLMTPSend(t, lmtp, "a@sender.test", rcpt, marker)
		wantMX := "mx4.insecure.test [127.0.3.4]"
		if r.Code != 250 || !strings.HasPrefix(r.Enhanced, "2.") || !strings.Contains(r.Text, wantMX) {
			t.Fatalf("reply for %s = %s; want 250 2.x.x naming %s (TLSA of an insecure zone ignored)", rcpt, r, wantMX)
		}
		msgs := mx4.Messages()
		if len(msgs) != 1 || mx4.MailCount() != 1 {
			t.Fatalf("mx4 stored %d messages after %d MAIL commands, want 1 of each", len(msgs), mx4.MailCount())
		}
		m := msgs[0]
		if m.From != "a@sender.test" || !slices.Equal(m.To, []string{rcpt}) || !m.TLS {
			t.Errorf("mx4 got %q -> %q, TLS %v; want a@sender.test -> [%s] over TLS", m.From, m.To, m.TLS, rcpt)
		}
		if !strings.Contains(string(m.Data), "Subject: "+marker+"\r\n") {
			t.Errorf("stored message lacks Subject: %s:\n%s", marker, m.Data)
		}
		a := daneAttempt(t, out, "insecure.test")
		if a["policy"] != "default" || strings.HasPrefix(fmt.Sprint(a["required"]), "dane") || a["proved"] == "dane" || a["code"] != 250.0 {
			t.Errorf("delivery attempt for insecure.test = %v; want policy default, no DANE required or proved, code 250", a)
		}
	})

	// caliop check --json, against the same DNS and MXs, says what
	// delivery just did, and why.
	t.Run("check", func(t *testing.T) {
		cfgFile := filepath.Join(t.TempDir(), "check.yaml")
		cfg := Config{Hostname: "relay.test", DNS: d.Resolver, LMTP: freeAddr(t), MXPort: p, Default: "encrypt", DataDir: t.TempDir()}
		if err := os.WriteFile(cfgFile, []byte(cfg.YAML()), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			domain, verdict string
			exit            int
			match           bool // a TLSA record matched the probed chain
		}{
			{"good.example.test", "authenticated", 0, true},
			{"wrong.example.test", "refused", 2, false},
			{"insecure.test", "encrypted", 1, false},
			{"bogus.test", "refused", 2, false},
		} {
			cmd := exec.Command(bin, "check", "--json", "--config", cfgFile, tc.domain)
			outb, err := cmd.Output()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("check %s: %v", tc.domain, err)
			}
			var rep struct {
				Verdict string `json:"verdict"`
				Reason  string `json:"reason"`
				MX      []struct {
					Host      string `json:"host"`
					Addresses []struct {
						Probe struct {
							TLSAMatch []struct {
								Record string `json:"record"`
							} `json:"tlsa_match"`
						} `json:"probe"`
					} `json:"addresses"`
				} `json:"mx"`
			}
			if err := json.Unmarshal(outb, &rep); err != nil {
				t.Fatalf("check %s: output is not JSON: %v\n%s", tc.domain, err, outb)
			}
			matched := false
			for _, mx := range rep.MX {
				for _, a := range mx.Addresses {
					matched = matched || len(a.Probe.TLSAMatch) > 0
				}
			}
			if rep.Verdict != tc.verdict || exit != tc.exit || matched != tc.match {
				t.Errorf("check %s: verdict %q (%s), exit %d, TLSA matched %v; want %q, exit %d, matched %v\n%s", tc.domain, rep.Verdict, rep.Reason, exit, matched, tc.verdict, tc.exit, tc.match, outb)
			}
		}
	})

	// Each MX got only its own domain's mail.
	if mx1.MailCount() != 1 || mx2.MailCount() != 0 || mx3.MailCount() != 0 || mx4.MailCount() != 1 {
		t.Errorf("MAIL commands at mx1..mx4 = %d %d %d %d, want 1 0 0 1", mx1.MailCount(), mx2.MailCount(), mx3.MailCount(), mx4.MailCount())
	}
}

// daneSPKI is the "3 1 1" association data of c's leaf: the SHA-256 of
// its SubjectPublicKeyInfo, in hex.
func daneSPKI(c tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// daneCommonPort returns a port free a moment ago on every host, found by
// listening on hosts[0]:0 and trying that port on the others; a few
// attempts when another process holds it somewhere.
func daneCommonPort(t *testing.T, hosts []string) int {
	t.Helper()
	var lastErr error
	for range 5 {
		l, err := net.Listen("tcp", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatalf("listen on %s: %v (127.0.0.0/8 should all be loopback)", hosts[0], err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		held := []net.Listener{l}
		lastErr = nil
		for _, h := range hosts[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(h, strconv.Itoa(p)))
			if err != nil {
				lastErr = err
				break
			}
			held = append(held, l)
		}
		for _, l := range held {
			l.Close()
		}
		if lastErr == nil {
			return p
		}
	}
	t.Fatalf("no port free on all of %v: %v", hosts, lastErr)
	return 0
}

// daneStartCaliop is startCaliop keeping Caliop's output for the test to
// read (its delivery attempt lines).
func daneStartCaliop(t *testing.T, bin string, cfg Config) *LockedBuffer {
	t.Helper()
	dir := t.TempDir()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Metrics = freeAddr(t)
	out := &LockedBuffer{Max: 1 << 20}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("caliop config:\n%s\ncaliop output:\n%s", cfg.YAML(), out.String())
		}
	})
	p, err := Start(bin, dir, cfg, out)
	if err != nil {
		t.Fatalf("%v\ncaliop output:\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return out
}

// daneAttemptNow returns the last "delivery attempt" log line (JSON) for
// domain in out, or nil.
func daneAttemptNow(out *LockedBuffer, domain string) map[string]any {
	var found map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		if m["msg"] == "delivery attempt" && m["domain"] == domain {
			found = m
		}
	}
	return found
}

// daneAttempt waits up to 2s for a delivery attempt line for domain.
func daneAttempt(t *testing.T, out *LockedBuffer, domain string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if a := daneAttemptNow(out, domain); a != nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Errorf("caliop logged no delivery attempt for %s", domain)
			return map[string]any{}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// daneReply is one SMTP/LMTP reply.
type daneReply struct {
	Code     int
	Enhanced string // "2.0.0", "" when the text has none
	Text     string // after the enhanced code; lines joined by "\n"
}

func (r daneReply) String() string {
	return fmt.Sprintf("%d %s %q", r.Code, r.Enhanced, r.Text)
}

var daneEnhanced = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}$`)

// daneLMTPSend sends one message from from to rcpt over LMTP (RFC 2033)
// and returns the reply for rcpt: the reply to RCPT if it was refused,
// else the per-recipient reply after DATA. Protocol errors fail t.
func daneLMTPSend(t *testing.T, addr, from, rcpt, marker string) daneReply {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(40 * time.Second))
	c := textproto.NewConn(conn)
	read := func() daneReply {
		t.Helper()
		code, msg, err := c.ReadResponse(0)
		if err != nil && code == 0 {
			t.Fatalf("LMTP %s: %v", addr, err)
		}
		r := daneReply{Code: code, Text: msg}
		if e, rest, _ := strings.Cut(msg, " "); daneEnhanced.MatchString(e) {
			r.Enhanced, r.Text = e, rest
		}
		return r
	}
	expect := func(what string, code int) {
		t.Helper()
		if r := read(); r.Code != code {
			t.Fatalf("LMTP %s: %s: %s, want %d", addr, what, r, code)
		}
	}
	cmd := func(format string, args ...any) {
		t.Helper()
		if _, err := c.Cmd(format, args...); err != nil {
			t.Fatalf("LMTP %s: %v", addr, err)
		}
	}
	expect("greeting", 220)
	cmd("LHLO client.sender.test")
	expect("LHLO", 250)
	cmd("MAIL FROM:<%s>", from)
	expect("MAIL FROM", 250)
	cmd("RCPT TO:<%s>", rcpt)
	if r := read(); r.Code != 250 {
		return r
	}
	cmd("DATA")
	expect("DATA", 354)
	w := c.DotWriter()
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@sender.test>\r\n\r\nbody of %s\r\n",
		from, rcpt, marker, time.Now().Format(time.RFC1123Z), marker, marker)
	if err := w.Close(); err != nil {
		t.Fatalf("LMTP %s: DATA: %v", addr, err)
	}
	r := read()
	cmd("QUIT")
	return r
}
