package smtpconn

import (
	"fmt"
	"strconv"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/address"
)

// Message is what a message asks of the server in its MAIL command.
type Message struct {
	Size int64 // SIZE (RFC 1870), 0 unknown
	// Body is the BODY value (RFC 6152: "7BIT" or "8BITMIME"), "" when
	// none was declared.
	Body       string
	UTF8       bool // SMTPUTF8 (RFC 6531 §3.4)
	RequireTLS bool // REQUIRETLS (RFC 8689 §3)
}

// MailParams are m's MAIL parameters for this server, each with a
// leading space; SIZE and BODY only when offered. When the server lacks
// what m needs, the refusal comes back instead, permanent for this
// server: an 8-bit body without 8BITMIME (RFC 6152 §3), SMTPUTF8 (RFC
// 6531 §3.2), REQUIRETLS (RFC 8689 §4.2.1), or a size over its SIZE.
func (c *Conn) MailParams(m Message) (string, *smtp.SMTPError) {
	refuse := func(code int, ec smtp.EnhancedCode, msg string) (string, *smtp.SMTPError) {
		return "", &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	switch {
	case m.Body == string(smtp.Body8BitMIME) && !c.Has("8BITMIME"):
		return refuse(554, smtp.EnhancedCode{5, 6, 3}, "8-bit message but 8BITMIME not offered")
	case m.UTF8 && !c.Has("SMTPUTF8"):
		return refuse(554, smtp.EnhancedCode{5, 6, 7}, "SMTPUTF8 required but not offered")
	case m.RequireTLS && !c.Has("REQUIRETLS"):
		return refuse(550, smtp.EnhancedCode{5, 7, 30}, "REQUIRETLS support required but not offered")
	case c.MaxSize() > 0 && m.Size > c.MaxSize():
		return refuse(552, smtp.EnhancedCode{5, 3, 4}, fmt.Sprintf("message of %d bytes exceeds the SIZE limit of %d", m.Size, c.MaxSize()))
	}
	p := ""
	if m.Size > 0 && c.Has("SIZE") {
		p += " SIZE=" + strconv.FormatInt(m.Size, 10)
	}
	if m.Body != "" && c.Has("8BITMIME") {
		p += " BODY=" + m.Body
	}
	if m.UTF8 {
		p += " SMTPUTF8"
	}
	if m.RequireTLS {
		p += " REQUIRETLS"
	}
	return p, nil
}

// WriteMail buffers "MAIL FROM:<path> params", the path from the one
// address writer (DESIGN.md invariant 8); Flush sends it.
func (c *Conn) WriteMail(from address.Address, params string) {
	w := c.Text.W
	w.WriteString("MAIL FROM:")
	w.WriteString(from.Path())
	w.WriteString(params)
	w.WriteString("\r\n")
}

// WriteRcpt buffers "RCPT TO:<path>".
func (c *Conn) WriteRcpt(to address.Address) {
	w := c.Text.W
	w.WriteString("RCPT TO:")
	w.WriteString(to.Path())
	w.WriteString("\r\n")
}

// Mail sends MAIL FROM and reads its reply, within Timeout.
func (c *Conn) Mail(from address.Address, params string) (*smtp.SMTPError, error) {
	return c.Cmd("MAIL FROM:%s%s", from.Path(), params)
}

// Rcpt sends RCPT TO and reads its reply, within Timeout.
func (c *Conn) Rcpt(to address.Address) (*smtp.SMTPError, error) {
	return c.Cmd("RCPT TO:%s", to.Path())
}
