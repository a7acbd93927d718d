package smtpconn

import (
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Parse turns a reply as net/textproto reads it (RFC 5321 §4.2: a
// three-digit code and text, continuation lines joined by "\n") into the
// *smtp.SMTPError every Caliop component passes replies around as,
// success included. It splits an RFC 3463 enhanced status code off the text; without
// one, or with one of another class than the code's, the code's class
// with .0.0 stands in. The lines are joined with spaces.
func Parse(code int, msg string) *smtp.SMTPError {
	r := &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 0, 0}, Message: msg}
	first, rest, _ := strings.Cut(msg, " ")
	if ec, ok := parseEnhanced(first); ok && ec[0] == code/100 {
		r.EnhancedCode = ec
		// Each continuation line repeats the code (RFC 2034 §3).
		r.Message = strings.ReplaceAll(rest, "\n"+first+" ", "\n")
	}
	r.Message = strings.ReplaceAll(r.Message, "\n", " ")
	return r
}

// parseEnhanced parses "class.subject.detail" (RFC 3463 §2).
func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCode{}, false
	}
	var ec smtp.EnhancedCode
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 999 || len(p) > 3 {
			return smtp.EnhancedCode{}, false
		}
		ec[i] = n
	}
	return ec, ec[0] == 2 || ec[0] == 4 || ec[0] == 5
}
