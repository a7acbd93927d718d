package relay

import (
	"strings"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/address"
)

// recipient is one RCPT TO address and its destination domain.
type recipient struct {
	raw  string          // as go-smtp gave it: the key of LMTP replies
	addr address.Address // addr.Domain is the route
	// key is the recipient's OpenPGP key when the message is to be
	// encrypted to it; recipients with and without keys take separate
	// routes (separate downstream transactions).
	key *openpgp.Entity
}

// domain is the destination domain, a lowercase A-label: the route.
func (r recipient) domain() string { return r.addr.Domain }

// routeKey identifies the downstream transaction r belongs to.
func (r recipient) routeKey() string {
	if r.key != nil {
		return r.domain() + " (pgp)"
	}
	return r.domain()
}

// parseRecipient parses a forward-path (RFC 5321 §4.1.2; non-ASCII only
// with SMTPUTF8, RFC 6531 §3.4) and checks that it has a route: address
// literals are refused, since Caliop relays to domains only, and so is a
// name of one label.
func parseRecipient(raw string, utf8 bool) (recipient, error) {
	a, err := address.Parse(raw, address.Recipient, utf8)
	if err != nil {
		return recipient{}, err
	}
	if a.IsLiteral() {
		return recipient{}, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Address literals are not relayed"}
	}
	if !strings.Contains(a.Domain, ".") {
		return recipient{}, &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 2}, Message: "Bad recipient domain " + a.Domain}
	}
	return recipient{raw: raw, addr: a}, nil
}
