// Package address is Caliop's one model of an SMTP envelope address
// (DESIGN.md invariant 8): every reverse-path and forward-path that enters
// is parsed here once (RFC 5321 §4.1.2, extended by RFC 6531 §3.3 for
// SMTPUTF8), checked, and written back out by one writer, Path, that
// quotes the local part exactly when it is not a dot-string. A client can
// never add a parameter or a second address to a command Caliop sends:
// the written form holds no control character, and no space, ">" or "<"
// outside a quoted string.
//
// go-smtp hands a server the mailbox with the quotes of a quoted local
// part already removed ("a b"@x.test arrives as a b@x.test); Parse takes
// that form: everything before the last "@" is the local part's content.
package address

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/idna"
)

// Address is a parsed mailbox, or the null reverse-path "<>".
type Address struct {
	// Local is the local part's content: a quoted string's quotes and
	// backslashes removed. "" only for the null reverse-path.
	Local string
	// Domain is a lowercase A-label without a trailing dot, or an
	// address literal with its brackets ("[192.0.2.1]", "[IPv6:...]").
	Domain string
}

// Null is the null reverse-path, "<>" (RFC 5321 §4.5.5).
var Null = Address{}

// IsNull reports whether a is the null reverse-path.
func (a Address) IsNull() bool { return a.Local == "" && a.Domain == "" }

// IsLiteral reports whether the domain is an address literal
// (RFC 5321 §4.1.3).
func (a Address) IsLiteral() bool { return strings.HasPrefix(a.Domain, "[") }

// UTF8 reports whether writing a needs SMTPUTF8 (RFC 6531 §3.3): its local
// part holds non-ASCII characters. The domain is always written as an
// A-label, so it never does.
func (a Address) UTF8() bool { return !isASCII(a.Local) }

// String is the address as written in a command, without angle brackets:
// local@domain, the local part quoted when it is not a dot-string
// (RFC 5321 §4.1.2: Local-part = Dot-string / Quoted-string). It is ""
// for the null reverse-path.
func (a Address) String() string {
	if a.IsNull() {
		return ""
	}
	var b strings.Builder
	b.Grow(len(a.Local) + len(a.Domain) + 3)
	writeLocal(&b, a.Local)
	b.WriteByte('@')
	b.WriteString(a.Domain)
	return b.String()
}

// Key is the address as a lookup key (WKD, per-address settings): the
// local part's content, "@", the domain. It is not quoted, so it is
// never written in a command: that is Path's job.
func (a Address) Key() string {
	if a.IsNull() {
		return ""
	}
	return a.Local + "@" + a.Domain
}

// Path is the address as a reverse-path or forward-path: "<" String ">"
// (RFC 5321 §4.1.2). Every command Caliop writes takes addresses from
// here.
func (a Address) Path() string { return "<" + a.String() + ">" }

// writeLocal writes the local part as a Dot-string when it is one, else
// as a Quoted-string with '"' and '\' escaped (quoted-pairSMTP).
func writeLocal(b *strings.Builder, local string) {
	if isDotString(local) {
		b.WriteString(local)
		return
	}
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		if c := local[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(local[i])
	}
	b.WriteByte('"')
}

// isDotString: Dot-string = Atom *("." Atom), Atom = 1*atext (RFC 5321
// §4.1.2, atext of RFC 5322 §3.2.3, UTF8-non-ascii added by RFC 6531).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports an RFC 5322 atext byte; bytes of UTF-8 sequences count
// (RFC 6531 §3.3), since Parse has checked the encoding.
func isAtext(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Limits of RFC 5321 §4.5.3.1: a domain of at most 255 octets (DNS
// allows 253 without the trailing dot), labels of at most 63.
const (
	maxDomain = 253
	maxLabel  = 63
	// maxLocal bounds the local part. §4.5.3.1.1 says 64 octets but asks
	// servers to accept more where they can; this only keeps a path
	// within the 256 octets of §4.5.3.1.3 plus slack, as real MTAs do.
	maxLocal = 256
)

// Parse parses a mailbox as go-smtp gives it (the local part unquoted)
// for a command of kind k. utf8 is whether the transaction's MAIL carried
// SMTPUTF8 (RFC 6531 §3.4: without it, non-ASCII is refused with
// 553 5.6.7). The error is the reply to give: 501 with 5.1.7 (sender)
// or 5.1.3 (recipient) for bad syntax.
func Parse(s string, k Kind, utf8 bool) (Address, error) {
	if s == "" && k == Sender {
		return Null, nil
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Address{}, k.syntax("address must be local-part@domain")
	}
	local, domain := s[:at], s[at+1:]
	if err := checkLocal(local, k, utf8); err != nil {
		return Address{}, err
	}
	d, err := parseDomain(domain, k, utf8)
	if err != nil {
		return Address{}, err
	}
	return Address{Local: local, Domain: d}, nil
}

// MustParse is Parse for addresses known to be good (configuration
// defaults, tests); it panics on error.
func MustParse(s string) Address {
	a, err := Parse(s, Recipient, true)
	if err != nil {
		panic(err)
	}
	return a
}

func checkLocal(local string, k Kind, utf8OK bool) error {
	switch {
	case local == "":
		return k.syntax("empty local part")
	case len(local) > maxLocal:
		return k.syntax("local part too long")
	}
	for i := 0; i < len(local); i++ {
		// qtextSMTP and quoted-pairSMTP are %d32-126 (RFC 5321
		// §4.1.2): no control character, NUL included, can be written.
		if c := local[i]; c < ' ' || c == 0x7f {
			return k.syntax("control character in local part")
		}
	}
	if isASCII(local) {
		return nil
	}
	if !utf8OK {
		return errNeedsUTF8(k)
	}
	if !utf8.ValidString(local) {
		return k.syntax("local part is not valid UTF-8")
	}
	for _, r := range local {
		if r >= 0x80 && r < 0xa0 { // C1 controls
			return k.syntax("control character in local part")
		}
	}
	return nil
}

// parseDomain checks a domain or address literal and returns the form
// used everywhere after: lowercase A-labels (IDNA 2008 lookup rules,
// RFC 5891 §5), no trailing dot.
func parseDomain(d string, k Kind, utf8OK bool) (string, error) {
	if strings.HasPrefix(d, "[") {
		if !validLiteral(d) {
			return "", k.syntax("bad address literal")
		}
		return d, nil
	}
	d = strings.TrimSuffix(d, ".")
	if !isASCII(d) {
		if !utf8OK {
			return "", errNeedsUTF8(k)
		}
		if !utf8.ValidString(d) {
			return "", k.syntax("domain is not valid UTF-8")
		}
	}
	ascii, err := idna.Lookup.ToASCII(d)
	if err != nil || !validDomain(ascii) {
		return "", k.syntax("bad domain")
	}
	return strings.ToLower(ascii), nil
}

// validDomain accepts names of letters, digits and hyphens (not at
// either end of a label), in labels of 1 to 63 octets, 253 in all
// (RFC 5321 §4.1.2 sub-domain, §4.5.3.1.2).
func validDomain(d string) bool {
	if d == "" || len(d) > maxDomain {
		return false
	}
	for l := range strings.SplitSeq(d, ".") {
		if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// validLiteral checks an address literal (RFC 5321 §4.1.3): IPv4, or
// IPv6 after "IPv6:". A General-address-literal has no registered tag
// besides IPv6 and could carry '"' or '>' into a command: refused.
func validLiteral(d string) bool {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return false
	}
	in := d[1 : len(d)-1]
	if a, err := netip.ParseAddr(in); err == nil {
		return a.Is4()
	}
	tag, rest, ok := strings.Cut(in, ":")
	if !ok || !strings.EqualFold(tag, "IPv6") {
		return false
	}
	a, err := netip.ParseAddr(rest)
	return err == nil && a.Is6() && a.Zone() == ""
}

// HasRoutingOperator reports whether the local part holds "%", "!" or
// "@", quoted or not: the source-routing forms (user%host@relay,
// host!user@relay, "user@host"@relay) that an MTA trusting Caliop would
// relay onward (Postfix allow_untrusted_routing).
func (a Address) HasRoutingOperator() bool {
	return strings.ContainsAny(a.Local, "%!@")
}

// Kind says which command an address came in: it picks the enhanced
// status code of a refusal (RFC 3463 §3.2).
type Kind int

const (
	Sender    Kind = iota // MAIL FROM: 5.1.7
	Recipient             // RCPT TO: 5.1.3
)

func (k Kind) syntax(why string) *smtp.SMTPError {
	if k == Sender {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address syntax: " + why}
	}
	return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address syntax: " + why}
}

// errNeedsUTF8 is RFC 6531 §3.4's refusal of a non-ASCII address in a
// transaction without SMTPUTF8.
func errNeedsUTF8(k Kind) *smtp.SMTPError {
	what := "sender"
	if k == Recipient {
		what = "recipient"
	}
	return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 6, 7}, Message: "Non-ASCII " + what + " address needs SMTPUTF8"}
}
