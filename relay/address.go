package relay

import (
	"strings"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/idna"
)

// recipient is one RCPT TO address and its destination domain.
type recipient struct {
	addr   string // as the MTA gave it
	domain string // lowercase A-label: the route
	// key is the recipient's OpenPGP key when the message is to be
	// encrypted to it; recipients with and without keys take separate
	// routes (separate downstream transactions).
	key *openpgp.Entity
}

// routeKey identifies the downstream transaction r belongs to.
func (r recipient) routeKey() string {
	if r.key != nil {
		return r.domain + " (pgp)"
	}
	return r.domain
}

// parseRecipient finds the route of a forward-path (RFC 5321 §4.1.2).
// Address literals are refused: Caliop relays to domains only.
func parseRecipient(addr string) (recipient, error) {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return recipient{}, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Recipient address must be local-part@domain"}
	}
	d := addr[at+1:]
	if strings.HasPrefix(d, "[") {
		return recipient{}, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Address literals are not relayed"}
	}
	// IDNA 2008 lookup rules: U-labels become A-labels (RFC 5891 §5).
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(d, "."))
	if err != nil || !validDomain(ascii) {
		return recipient{}, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Bad recipient domain " + d}
	}
	return recipient{addr: addr, domain: strings.ToLower(ascii)}, nil
}

// validDomain accepts LDH names with at least two labels.
func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
