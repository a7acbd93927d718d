package smtpconn

import (
	"strings"
	"testing"
)

// FuzzParse: any reply text keeps its code, gets an enhanced code of the
// code's class, and comes out on one line.
// Longer runs: go test ./internal/smtpconn -run XXX -fuzz FuzzParse
func FuzzParse(f *testing.F) {
	f.Add(250, "2.0.0 OK")
	f.Add(550, "5.1.1 no such user\n5.1.1 really")
	f.Add(451, "4.7.0 x")
	f.Add(421, "5.0.0 wrong class")
	f.Add(250, "mx.example ESMTP\nPIPELINING\nSIZE 100")
	f.Add(554, "")
	f.Fuzz(func(t *testing.T, code int, msg string) {
		if code < 200 || code > 599 {
			return
		}
		r := Parse(code, msg)
		if r.Code != code || r.EnhancedCode[0] != code/100 {
			t.Fatalf("Parse(%d, %q) = %d %v", code, msg, r.Code, r.EnhancedCode)
		}
		if strings.Contains(r.Message, "\n") {
			t.Fatalf("Parse(%d, %q): message on more than one line: %q", code, msg, r.Message)
		}
	})
}
