package smtpconn

import (
	"testing"

	"github.com/emersion/go-smtp"
)

// TestMailParams: each parameter only when the server offers it, and the
// refusal of what a message needs and the server lacks.
func TestMailParams(t *testing.T) {
	full := map[string]string{"SIZE": "1000", "8BITMIME": "", "SMTPUTF8": "", "REQUIRETLS": ""}
	for _, tc := range []struct {
		name   string
		ext    map[string]string
		m      Message
		params string
		code   smtp.EnhancedCode
	}{
		{"all offered", full, Message{Size: 500, Body: "8BITMIME", UTF8: true, RequireTLS: true}, " SIZE=500 BODY=8BITMIME SMTPUTF8 REQUIRETLS", smtp.EnhancedCode{}},
		{"7BIT passed on when 8BITMIME is offered", full, Message{Body: "7BIT"}, " BODY=7BIT", smtp.EnhancedCode{}},
		{"nothing offered, nothing needed", map[string]string{}, Message{Size: 500, Body: "7BIT"}, "", smtp.EnhancedCode{}},
		{"8-bit without 8BITMIME (RFC 6152 §3)", map[string]string{}, Message{Body: "8BITMIME"}, "", smtp.EnhancedCode{5, 6, 3}},
		{"SMTPUTF8 not offered (RFC 6531 §3.2)", map[string]string{}, Message{UTF8: true}, "", smtp.EnhancedCode{5, 6, 7}},
		{"REQUIRETLS not offered (RFC 8689 §4.2.1)", map[string]string{}, Message{RequireTLS: true}, "", smtp.EnhancedCode{5, 7, 30}},
		{"over the SIZE limit (RFC 1870)", full, Message{Size: 2000}, "", smtp.EnhancedCode{5, 3, 4}},
	} {
		c := &Conn{Ext: tc.ext}
		params, refused := c.MailParams(tc.m)
		switch {
		case tc.code != (smtp.EnhancedCode{}):
			if refused == nil || refused.EnhancedCode != tc.code {
				t.Errorf("%s: refused %v, want %v", tc.name, refused, tc.code)
			}
		case refused != nil || params != tc.params:
			t.Errorf("%s: %q %v, want %q", tc.name, params, refused, tc.params)
		}
	}
}
