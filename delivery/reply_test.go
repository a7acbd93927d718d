package delivery

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/tlsrpt"
)

func TestSummariseStaysTemporary(t *testing.T) {
	tlsFail := failure{host: "mx1.example", addr: "192.0.2.1:25", kind: failPolicy, result: tlsrpt.CertificateExpired, err: errors.New("x509: expired")}
	refused := failure{host: "mx2.example", addr: "192.0.2.2:25", kind: failServer, err: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 0, 0}, Message: "go away"}}
	no8bit := failure{host: "mx3.example", addr: "192.0.2.3:25", kind: failMessage, err: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 3}, Message: "no 8BITMIME"}}
	r := summarise([]failure{refused, tlsFail})
	if r.Code != 451 || r.EnhancedCode != (smtp.EnhancedCode{4, 7, 5}) || !strings.Contains(r.Message, "certificate-expired") || !strings.Contains(r.Message, "mx2.example [192.0.2.2] said 554") {
		t.Errorf("policy failure beside a 5xx greeting: %+v", r)
	}
	if r := summarise([]failure{no8bit}); r.Code != 554 || r.EnhancedCode != (smtp.EnhancedCode{5, 6, 3}) {
		t.Errorf("only 8BITMIME refusals: %+v", r)
	}
	if r := summarise([]failure{no8bit, tlsFail}); r.Code/100 != 4 {
		t.Errorf("an MX that might take it later keeps the reply temporary: %+v", r)
	}
}
