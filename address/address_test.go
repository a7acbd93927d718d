package address

import (
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestParseAndWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string // in: as go-smtp gives it (quotes removed)
		utf8     bool
		path     string // written form
		domain   string
	}{
		{"dot-string", "user.name+tag@Example.TEST", false, "<user.name+tag@example.test>", "example.test"},
		{"space quoted", "a b@x.test", false, `<"a b"@x.test>`, "x.test"},
		{"parameter injection quoted", "s> RET=FULL ENVID=x@sender.test", false, `<"s> RET=FULL ENVID=x"@sender.test>`, "sender.test"},
		{"quote and backslash escaped", `a"b\c@x.test`, false, `<"a\"b\\c"@x.test>`, "x.test"},
		{"leading dot quoted", ".a@x.test", false, `<".a"@x.test>`, "x.test"},
		{"double dot quoted", "a..b@x.test", false, `<"a..b"@x.test>`, "x.test"},
		{"at sign quoted", "x@other.test@example.test", false, `<"x@other.test"@example.test>`, "example.test"},
		{"trailing dot dropped", "user@x.test.", false, "<user@x.test>", "x.test"},
		{"U-label written as A-label", "user@bücher.x.test", true, "<user@xn--bcher-kva.x.test>", "xn--bcher-kva.x.test"},
		{"UTF-8 local part", "üser@x.test", true, "<üser@x.test>", "x.test"},
		{"IPv4 literal", "u@[192.0.2.1]", false, "<u@[192.0.2.1]>", "[192.0.2.1]"},
		{"IPv6 literal", "u@[IPv6:2001:db8::1]", false, "<u@[IPv6:2001:db8::1]>", "[IPv6:2001:db8::1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.in, Recipient, tc.utf8)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got := a.Path(); got != tc.path {
				t.Errorf("Path() = %s, want %s", got, tc.path)
			}
			if a.Domain != tc.domain {
				t.Errorf("Domain = %q, want %q", a.Domain, tc.domain)
			}
		})
	}
}

func TestNullSender(t *testing.T) {
	t.Parallel()
	a, err := Parse("", Sender, false)
	if err != nil || !a.IsNull() || a.Path() != "<>" {
		t.Fatalf("Parse(\"\", Sender) = %+v, %v; want the null path", a, err)
	}
	if _, err := Parse("", Recipient, false); err == nil {
		t.Fatal("an empty recipient was accepted")
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63) + "."
	for _, tc := range []struct {
		name, in string
		utf8     bool
		code     int
		enh      smtp.EnhancedCode
	}{
		{"NUL in local part", "a\x00b@x.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"CR in local part", "a\rb@x.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"DEL in local part", "a\x7fb@x.test", true, 501, smtp.EnhancedCode{5, 1, 3}},
		{"C1 control", "a\u0085b@x.test", true, 501, smtp.EnhancedCode{5, 1, 3}},
		{"NUL in domain", "a@x\x00.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"non-ASCII local part without SMTPUTF8", "üser@x.test", false, 553, smtp.EnhancedCode{5, 6, 7}},
		{"U-label without SMTPUTF8", "user@bücher.x.test", false, 553, smtp.EnhancedCode{5, 6, 7}},
		{"invalid UTF-8", "a\xff@x.test", true, 501, smtp.EnhancedCode{5, 1, 3}},
		{"empty label", "user@x..test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"over-long domain", "user@" + strings.Repeat(long, 4) + "test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"over-long label", "user@" + strings.Repeat("a", 64) + ".test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"no domain", "user", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"empty domain", "user@", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"empty local part", "@x.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"space in domain", "user@x .test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"bracket in domain", "user@x>.test", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"bad literal", "u@[300.0.0.1]", false, 501, smtp.EnhancedCode{5, 1, 3}},
		{"IPv6 literal without tag", "u@[2001:db8::1]", false, 501, smtp.EnhancedCode{5, 1, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Parse(tc.in, Recipient, tc.utf8)
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %s, %v; want an SMTP refusal", tc.in, a.Path(), err)
			}
			if se.Code != tc.code || se.EnhancedCode != tc.enh {
				t.Errorf("reply %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, tc.code, tc.enh)
			}
		})
	}
}

func TestSenderCode(t *testing.T) {
	t.Parallel()
	_, err := Parse("user@x..test", Sender, false)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 501 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 7}) {
		t.Fatalf("bad sender: %v; want 501 5.1.7", err)
	}
}

func TestRoutingOperators(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"x%other.test@example.test":   true,
		"x@other.test@example.test":   true, // "x@other.test"@example.test
		"x!other.test@example.test":   true,
		"other.test!x@example.test":   true,
		"first.last+tag@example.test": false,
	} {
		if got := MustParse(in).HasRoutingOperator(); got != want {
			t.Errorf("%s: HasRoutingOperator = %v, want %v", in, got, want)
		}
	}
}

func TestUTF8(t *testing.T) {
	t.Parallel()
	if MustParse("user@bücher.test").UTF8() {
		t.Error("an ASCII local part with a U-label domain needs no SMTPUTF8 once written as an A-label")
	}
	if !MustParse("üser@x.test").UTF8() {
		t.Error("a non-ASCII local part needs SMTPUTF8")
	}
}
