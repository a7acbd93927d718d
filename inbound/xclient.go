package inbound

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// peer is what the next hop is told about the client.
type peer struct {
	addr  netip.AddrPort
	helo  string
	esmtp bool // greeted with EHLO
}

// unavailable is XCLIENT's value for what is not known. NAME is always
// unavailable: Caliop does no reverse DNS lookup.
const unavailable = "[UNAVAILABLE]"

// maxXCLIENT is the longest XCLIENT command line, CRLF excluded
// (XCLIENT_README note 1: 512 characters for SMTP commands).
const maxXCLIENT = 510

// offersADDR reports whether the XCLIENT keyword's attributes include
// ADDR, the one that matters for the next hop's relay restrictions.
func offersADDR(offered string) bool {
	for _, a := range strings.Fields(offered) {
		if strings.EqualFold(a, "ADDR") {
			return true
		}
	}
	return false
}

// xclientCommand builds "XCLIENT NAME=... ADDR=... PORT=... PROTO=...
// HELO=..." with the attributes the next hop lists after its XCLIENT EHLO
// keyword (Postfix XCLIENT_README), "" when it lists none of them. A HELO
// that would make the line too long is sent as [UNAVAILABLE].
func xclientCommand(offered string, p peer) string {
	names := set(strings.Fields(strings.ToUpper(offered)))
	helo := p.helo
	if helo == "" || len(helo) > 255 { // XCLIENT_README note 1
		helo = unavailable
	}
	cmd := buildXCLIENT(names, p, helo)
	if len(cmd) > maxXCLIENT {
		cmd = buildXCLIENT(names, p, unavailable)
	}
	return cmd
}

func buildXCLIENT(names map[string]bool, p peer, helo string) string {
	addr, port := unavailable, unavailable
	if a := p.addr.Addr().Unmap(); a.Is4() {
		addr, port = a.String(), strconv.Itoa(int(p.addr.Port()))
	} else if a.Is6() {
		addr, port = "IPV6:"+a.String(), strconv.Itoa(int(p.addr.Port()))
	}
	proto := "SMTP"
	if p.esmtp {
		proto = "ESMTP"
	}
	b := strings.Builder{}
	for _, a := range [...]struct{ name, value string }{
		{"NAME", unavailable}, {"ADDR", addr}, {"PORT", port}, {"PROTO", proto}, {"HELO", helo},
	} {
		if names[a.name] {
			fmt.Fprintf(&b, " %s=%s", a.name, xtext(a.value))
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return "XCLIENT" + b.String()
}

// xtext encodes s as RFC 3461 §4 xtext: "+", "=" and bytes outside "!"
// to "~" become "+" and two upper-case hex digits.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// ehloName is the name to say EHLO with after XCLIENT: the client's own
// (as in XCLIENT_README's example) when it is one word of printable
// ASCII, else Caliop's.
func ehloName(helo, hostname string) string {
	if helo == "" || len(helo) > 255 {
		return hostname
	}
	for i := 0; i < len(helo); i++ {
		if helo[i] <= ' ' || helo[i] >= 0x7f {
			return hostname
		}
	}
	return helo
}
