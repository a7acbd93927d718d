package relay

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

// mailAndRcpts returns the MX's MAIL and RCPT command lines as received,
// less the SIZE parameter (sent in LMTP mode only, where the size is
// known).
func mailAndRcpts(mx *mxtest.Server) []string {
	var out []string
	for _, c := range mx.Commands() {
		if strings.HasPrefix(c, "MAIL ") || strings.HasPrefix(c, "RCPT ") {
			out = append(out, sizeParam.ReplaceAllString(c, ""))
		}
	}
	return out
}

var sizeParam = regexp.MustCompile(` SIZE=[0-9]+`)

// TestQuotedLocalParts: quoted local parts reach the MX quoted, over SMTP
// and LMTP, and a quoted string that looks like parameters stays one
// address (no RET, ENVID, NOTIFY or ORCPT smuggled in).
func TestQuotedLocalParts(t *testing.T) {
	t.Parallel()
	for _, lmtp := range []bool{false, true} {
		t.Run(fmt.Sprintf("lmtp=%v", lmtp), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{})
			mx := w.mx("mx1.example.test", mxtest.Behavior{})
			w.domain("example.test", "mx1.example.test")
			addr := w.smtp
			hello := "EHLO mta.test"
			if lmtp {
				addr, hello = w.lmtp, "LHLO mta.test"
			}
			c := dialRaw(t, addr)
			c.must(hello, "250")
			c.must(`MAIL FROM:<"s> RET=FULL ENVID=x"@sender.test>`, "250")
			c.must(`RCPT TO:<"a b"@example.test>`, "250")
			c.must(`RCPT TO:<"c> NOTIFY=NEVER ORCPT=rfc822;x@evil.test"@Example.Test.>`, "250")
			c.data(simpleBody)
			c.expect("250")
			if lmtp {
				c.expect("250")
			}
			mx.WaitMessages(t, 1, 5*time.Second)
			want := []string{
				`MAIL FROM:<"s> RET=FULL ENVID=x"@sender.test>`,
				`RCPT TO:<"a b"@example.test>`,
				`RCPT TO:<"c> NOTIFY=NEVER ORCPT=rfc822;x@evil.test"@example.test>`,
			}
			if got := mailAndRcpts(mx); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("MX saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestBadAddressesRefusedOutbound: addresses that must not go on get a 5xx
// at the command and nothing reaches the MX.
func TestBadAddressesRefusedOutbound(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 60) + "."
	for _, tc := range []struct {
		name, mail, rcpt, want string
	}{
		{"NUL in MAIL FROM", "MAIL FROM:<a\x00b@sender.test>", "", "501 5.1.7"},
		{"non-ASCII sender without SMTPUTF8", "MAIL FROM:<üser@sender.test>", "", "553 5.6.7"},
		{"empty label in MAIL FROM", "MAIL FROM:<user@x..test>", "", "501 5.1.7"},
		{"308-octet sender domain", "MAIL FROM:<user@" + strings.Repeat(long, 5) + "test>", "", "501 5.1.7"},
		{"NUL in RCPT TO", "", "RCPT TO:<a\x00b@example.test>", "501 5.1.3"},
		{"control character in RCPT TO", "", "RCPT TO:<\"a\x07b\"@example.test>", "501 5.1.3"},
		{"non-ASCII recipient without SMTPUTF8", "", "RCPT TO:<üser@example.test>", "553 5.6.7"},
		{"U-label recipient without SMTPUTF8", "", "RCPT TO:<user@bücher.example.test>", "553 5.6.7"},
		{"empty label in RCPT TO", "", "RCPT TO:<user@example..test>", "501 5.1.3"},
		{"over-long recipient domain", "", "RCPT TO:<user@" + strings.Repeat(long, 5) + "test>", "501 5.1.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, worldOpts{})
			mx := w.mx("mx1.example.test", mxtest.Behavior{SMTPUTF8: true})
			w.domain("example.test", "mx1.example.test")
			c := dialRaw(t, w.smtp)
			c.must("EHLO mta.test", "250")
			if tc.mail != "" {
				c.must(tc.mail, tc.want)
			} else {
				c.must("MAIL FROM:<sender@origin.test>", "250")
				c.must(tc.rcpt, tc.want)
			}
			if n := mx.MailCount(); n != 0 {
				t.Errorf("%d MAIL at the MX", n)
			}
		})
	}
}

// TestSMTPUTF8Addresses: with SMTPUTF8, a U-label domain is routed and
// written as its A-label, and a non-ASCII local part goes to an MX that
// offers SMTPUTF8.
func TestSMTPUTF8Addresses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, worldOpts{})
	mx := w.mx("mx1.xn--bcher-kva.test", mxtest.Behavior{SMTPUTF8: true})
	w.domain("xn--bcher-kva.test", "mx1.xn--bcher-kva.test")
	c := dialRaw(t, w.smtp)
	c.must("EHLO mta.test", "250")
	c.must("MAIL FROM:<sender@origin.test> SMTPUTF8", "250")
	c.must("RCPT TO:<üser@bücher.test>", "250")
	c.data(simpleBody)
	c.expect("250")
	mx.WaitMessages(t, 1, 5*time.Second)
	got := mailAndRcpts(mx)
	if len(got) != 2 || got[1] != "RCPT TO:<üser@xn--bcher-kva.test>" || !strings.Contains(got[0], " SMTPUTF8") {
		t.Errorf("MX saw %q", got)
	}
}
