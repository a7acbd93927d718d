package smtpconn

import (
	"testing"

	"github.com/emersion/go-smtp"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		code int
		msg  string
		want smtp.SMTPError
	}{
		{"enhanced code split off", 250, "2.0.0 Ok: queued as X", smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: queued as X"}},
		{"continuation lines repeat the code (RFC 2034 §3)", 550, "5.1.1 no such user\n5.1.1 really", smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user really"}},
		{"no enhanced code: class.0.0", 451, "try later", smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "try later"}},
		{"an enhanced code of another class is text", 451, "5.1.1 odd", smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "5.1.1 odd"}},
		{"class 3 is not an enhanced class", 354, "3.0.0 go on", smtp.SMTPError{Code: 354, EnhancedCode: smtp.EnhancedCode{3, 0, 0}, Message: "3.0.0 go on"}},
		{"four-digit detail is text", 550, "5.1.1000 x", smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "5.1.1000 x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Parse(tc.code, tc.msg); *got != tc.want {
				t.Errorf("Parse(%d, %q) = %+v, want %+v", tc.code, tc.msg, *got, tc.want)
			}
		})
	}
}
