package inbound

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

// TestRoutingOperatorsRefused: a recipient of an operator's domain whose
// local part routes onward is refused at RCPT (550 5.7.1) and never
// reaches the next hop, which trusts Caliop and would relay it
// (DESIGN.md invariant 5).
func TestRoutingOperatorsRefused(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
	for _, rcpt := range []string{
		"x%other.test@example.org",
		`"x@other.test"@example.org`,
		"x@other.test@example.org",
		"x!other.test@example.org",
		"other.test!x@example.org",
		`"x%other.test"@example.org`,
	} {
		c.cmd("RCPT TO:<"+rcpt+">", 550, "5.7.1")
	}
	c.cmd("RCPT TO:<bob@example.org>", 250, "")
	if got := commandsWith(mx, "RCPT"); len(got) != 1 || got[0] != "RCPT TO:<bob@example.org>" {
		t.Errorf("next hop RCPT commands %q, want only bob", got)
	}
}

// TestBadAddressesRefused: addresses that cannot be written downstream
// as they are get a 5xx at the command, and nothing of them reaches the
// next hop.
func TestBadAddressesRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 60) + "."
	for _, tc := range []struct {
		name, mail, rcpt string // one of them bad
		code             int
		enh              string
	}{
		{"NUL in MAIL FROM", "MAIL FROM:<a\x00b@sender.example>", "", 501, "5.1.7"},
		{"control character in MAIL FROM", "MAIL FROM:<\"a\x01b\"@sender.example>", "", 501, "5.1.7"},
		{"non-ASCII sender without SMTPUTF8", "MAIL FROM:<üser@sender.example>", "", 553, "5.6.7"},
		{"U-label sender without SMTPUTF8", "MAIL FROM:<user@bücher.example>", "", 553, "5.6.7"},
		{"empty label in MAIL FROM", "MAIL FROM:<user@x..example>", "", 501, "5.1.7"},
		{"over-long sender domain", "MAIL FROM:<user@" + strings.Repeat(long, 5) + "example>", "", 501, "5.1.7"},
		{"NUL in RCPT TO", "", "RCPT TO:<b\x00ob@example.org>", 501, "5.1.3"},
		{"non-ASCII recipient without SMTPUTF8", "", "RCPT TO:<bøb@example.org>", 553, "5.6.7"},
		{"empty label in RCPT TO", "", "RCPT TO:<bob@example..org>", 501, "5.1.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, mxtest.Behavior{SMTPUTF8: true}, nil)
			c := h.dial()
			c.ehlo()
			if tc.mail != "" {
				c.cmd(tc.mail, tc.code, tc.enh)
				if n := mx.MailCount(); n != 0 {
					t.Errorf("%d MAIL at the next hop", n)
				}
				return
			}
			c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
			c.cmd(tc.rcpt, tc.code, tc.enh)
			if got := commandsWith(mx, "RCPT"); len(got) != 0 {
				t.Errorf("next hop saw %q", got)
			}
		})
	}
}

// TestQuotedAddressesPassedOn: a quoted local part reaches the next hop
// quoted, so that nothing in it can act as a parameter; a trailing dot
// and upper case in the domain are normalised.
func TestQuotedAddressesPassedOn(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.cmd(`MAIL FROM:<"s> RET=FULL ENVID=x"@sender.example>`, 250, "")
	c.cmd(`RCPT TO:<"a b"@Example.ORG.>`, 250, "")
	c.cmd(`RCPT TO:<"c> NOTIFY=NEVER"@example.org>`, 250, "")
	want := []string{
		`MAIL FROM:<"s> RET=FULL ENVID=x"@sender.example>`,
		`RCPT TO:<"a b"@example.org>`,
		`RCPT TO:<"c> NOTIFY=NEVER"@example.org>`,
	}
	got := append(commandsWith(mx, "MAIL"), commandsWith(mx, "RCPT")...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("next hop saw\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestNextHopSource: the connection to the next hop is made from
// NextHopSource, the address the next hop authorises for XCLIENT.
func TestNextHopSource(t *testing.T) {
	t.Parallel()
	src := netip.MustParseAddr("127.0.0.2")
	if ln, err := net.Listen("tcp", "127.0.0.2:0"); err != nil {
		t.Fatalf("127.0.0.2 not usable here (all of 127.0.0.0/8 is loopback on Linux): %v", err)
	} else {
		ln.Close()
	}
	h, mx := startMX(t, mxtest.Behavior{}, func(o *Options) { o.NextHopSource = src })
	c := h.dial()
	c.ehlo()
	c.envelope("alice@sender.example", "bob@example.org")
	sources := mx.Sources()
	if len(sources) != 1 {
		t.Fatalf("next hop connections from %q, want one", sources)
	}
	if ap := netip.MustParseAddrPort(sources[0]); ap.Addr() != src {
		t.Errorf("next hop connection from %s, want %s", ap.Addr(), src)
	}
}
