package mtasts

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseRecord: any TXT string parses or fails with ErrRecordSyntax
// (or ErrNoRecord when it is not an STS record at all);
// a parsed id is 1 to 32 letters and digits (RFC 8461 §3.1).
// Longer runs: go test ./mtasts -run XXX -fuzz FuzzParseRecord
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1;id=1", "v=STSv1 ; id=a; ext=x", "v=STSv1; id=", "v=STSv10; id=1", "", "v=STSv1; id=" + strings.Repeat("a", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			if !errors.Is(err, ErrRecordSyntax) && !errors.Is(err, ErrNoRecord) {
				t.Fatalf("ParseRecord(%q): %v wraps neither ErrRecordSyntax nor ErrNoRecord", txt, err)
			}
			return
		}
		if r.ID == "" || len(r.ID) > maxIDLen {
			t.Fatalf("ParseRecord(%q): id %q", txt, r.ID)
		}
		for _, c := range r.ID {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				t.Fatalf("ParseRecord(%q): id %q has %q", txt, r.ID, c)
			}
		}
	})
}

// FuzzParsePolicy: any body parses or fails with ErrPolicyInvalid; a
// parsed policy has a known mode, an mx unless mode is none, and a
// max_age within RFC 8461 §3.2's bound.
// Longer runs: go test ./mtasts -run XXX -fuzz FuzzParsePolicy
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n",
		"version: STSv1\r\nmode: testing\r\nmx: a.example\r\nmax_age: 604800\r\n",
		"version: STSv1\nmode: none\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmax_age: 99999999999\nmx: a\n",
		"mode: enforce\n", "\xff", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePolicy(body)
		if err != nil {
			if !errors.Is(err, ErrPolicyInvalid) {
				t.Fatalf("ParsePolicy: %v does not wrap ErrPolicyInvalid", err)
			}
			return
		}
		switch p.Mode {
		case ModeEnforce, ModeTesting:
			if len(p.MX) == 0 {
				t.Fatalf("mode %s without mx: %q", p.Mode, body)
			}
		case ModeNone:
		default:
			t.Fatalf("mode %q accepted: %q", p.Mode, body)
		}
		if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("max_age %v accepted: %q", p.MaxAge, body)
		}
		for _, mx := range p.MX {
			if mx == "" || strings.ContainsAny(mx, " \t\r\n") {
				t.Fatalf("mx %q accepted: %q", mx, body)
			}
		}
	})
}
