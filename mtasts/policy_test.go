package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// policyOf builds a policy body from lines joined by LF, with a final LF.
func policyOf(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// TestParsePolicy is the RFC 8461 §3.2 conformance table.
func TestParsePolicy(t *testing.T) {
	t.Parallel()
	rfcExample := readFixture(t, "rfc8461-3.2-policy.txt")
	rfcMX := []string{"mail.example.com", "*.example.net", "backupmx.example.com"}
	week := 604800 * time.Second
	label63 := strings.Repeat("a", 63)
	label64 := strings.Repeat("a", 64)
	tests := []struct {
		name    string
		body    string
		want    *Policy // Text is checked against body with CRLF as LF
		errText string  // non-empty: ErrPolicyInvalid saying this
	}{
		{name: "RFC 8461 §3.2 example", body: rfcExample, want: &Policy{Mode: ModeEnforce, MX: rfcMX, MaxAge: week}},
		{name: "CRLF", body: strings.ReplaceAll(rfcExample, "\n", "\r\n"), want: &Policy{Mode: ModeEnforce, MX: rfcMX, MaxAge: week}},
		{name: "mixed LF and CRLF", body: "version: STSv1\r\nmode: enforce\nmx: mail.example.com\r\nmx: *.example.net\nmx: backupmx.example.com\r\nmax_age: 604800",
			want: &Policy{Mode: ModeEnforce, MX: rfcMX, MaxAge: week}},
		{name: "no final line end", body: strings.TrimSuffix(rfcExample, "\n"), want: &Policy{Mode: ModeEnforce, MX: rfcMX, MaxAge: week}},
		{name: "fields in any order, tabs and spaces", body: policyOf("max_age:\t86400 ", "mx:mail.example.com", "mode:  testing\t", "version: STSv1"),
			want: &Policy{Mode: ModeTesting, MX: []string{"mail.example.com"}, MaxAge: 86400 * time.Second}},
		{name: "mode none without mx", body: policyOf("version: STSv1", "mode: none", "max_age: 86400"), want: &Policy{Mode: ModeNone, MaxAge: 86400 * time.Second}},
		{name: "enforce without mx", body: policyOf("version: STSv1", "mode: enforce", "max_age: 86400"), errText: "no mx field, required in mode enforce"},
		{name: "testing without mx", body: policyOf("version: STSv1", "mode: testing", "max_age: 86400"), errText: "no mx field"},
		{name: "max_age 10 digits capped", body: policyOf("version: STSv1", "mode: none", "max_age: 9999999999"), want: &Policy{Mode: ModeNone, MaxAge: MaxMaxAge}},
		{name: "max_age one over the cap", body: policyOf("version: STSv1", "mode: none", "max_age: 31557601"), want: &Policy{Mode: ModeNone, MaxAge: MaxMaxAge}},
		{name: "max_age at the cap", body: policyOf("version: STSv1", "mode: none", "max_age: 31557600"), want: &Policy{Mode: ModeNone, MaxAge: 31557600 * time.Second}},
		{name: "max_age 0", body: policyOf("version: STSv1", "mode: none", "max_age: 0"), want: &Policy{Mode: ModeNone}},
		{name: "max_age 11 digits", body: policyOf("version: STSv1", "mode: none", "max_age: 00000000001"), errText: `line 3: max_age "00000000001" is not 1 to 10 digits`},
		{name: "max_age -1", body: policyOf("version: STSv1", "mode: none", "max_age: -1"), errText: `line 3: max_age "-1" is not 1 to 10 digits`},
		{name: "max_age empty", body: policyOf("version: STSv1", "mode: none", "max_age:"), errText: `line 3: max_age "" is not 1 to 10 digits`},
		{name: "max_age 1.5", body: policyOf("version: STSv1", "mode: none", "max_age: 1.5"), errText: `max_age "1.5"`},
		{name: "max_age +1", body: policyOf("version: STSv1", "mode: none", "max_age: +1"), errText: `max_age "+1"`},
		{name: "duplicated mode: first wins", body: policyOf("version: STSv1", "mode: enforce", "mode: none", "mx: a.example", "max_age: 1"),
			want: &Policy{Mode: ModeEnforce, MX: []string{"a.example"}, MaxAge: time.Second}},
		{name: "duplicated mode: later bogus ignored", body: policyOf("version: STSv1", "mode: none", "mode: bogus", "max_age: 1"), want: &Policy{Mode: ModeNone, MaxAge: time.Second}},
		{name: "duplicated max_age: first wins", body: policyOf("version: STSv1", "mode: none", "max_age: 1", "max_age: -1"), want: &Policy{Mode: ModeNone, MaxAge: time.Second}},
		{name: "duplicated version: first wins", body: policyOf("version: STSv1", "version: STSv2", "mode: none", "max_age: 1"), want: &Policy{Mode: ModeNone, MaxAge: time.Second}},
		{name: "duplicated version: first is STSv2", body: policyOf("version: STSv2", "version: STSv1", "mode: none", "max_age: 1"), errText: `line 1: version "STSv2" is not STSv1`},
		{name: "missing version", body: policyOf("mode: none", "max_age: 1"), errText: "no version field"},
		{name: "missing mode", body: policyOf("version: STSv1", "max_age: 1"), errText: "no mode field"},
		{name: "missing max_age", body: policyOf("version: STSv1", "mode: none"), errText: "no max_age field"},
		{name: "empty body", body: "", errText: "no version field"},
		{name: "version STSv2", body: policyOf("version: STSv2", "mode: none", "max_age: 1"), errText: `line 1: version "STSv2" is not STSv1`},
		{name: "version is case-sensitive", body: policyOf("version: stsv1", "mode: none", "max_age: 1"), errText: `version "stsv1"`},
		{name: "mode is case-sensitive", body: policyOf("version: STSv1", "mode: Enforce", "max_age: 1"), errText: `line 2: mode "Enforce" is not enforce, testing or none`},
		{name: "key names are case-sensitive", body: policyOf("version: STSv1", "Mode: none", "max_age: 1"), errText: "no mode field"},
		{name: "unknown key ignored", body: policyOf("version: STSv1", "mode: none", "x-note: hello; a=b, ünïcode", "max_age: 1"), want: &Policy{Mode: ModeNone, MaxAge: time.Second}},
		{name: "unknown key with empty value", body: policyOf("version: STSv1", "mode: none", "x-note:", "max_age: 1"), errText: `line 3: field "x-note" has an empty value`},
		{name: "unknown key with control character", body: policyOf("version: STSv1", "mode: none", "x-note: a\x01b", "max_age: 1"), errText: "control character"},
		{name: "bad field name", body: policyOf("version: STSv1", "mode : none", "max_age: 1"), errText: `line 2: field name "mode "`},
		{name: "mx empty", body: policyOf("version: STSv1", "mode: enforce", "mx:", "max_age: 1"), errText: `line 3: mx "": empty domain name`},
		{name: "mx *.", body: policyOf("version: STSv1", "mode: enforce", "mx: *.", "max_age: 1"), errText: `mx "*."`},
		{name: "mx a..b", body: policyOf("version: STSv1", "mode: enforce", "mx: a..b", "max_age: 1"), errText: "empty label"},
		{name: "mx trailing dot dropped", body: policyOf("version: STSv1", "mode: enforce", "mx: mail.example.com.", "max_age: 1"), want: &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com"}, MaxAge: time.Second}},
		{name: "mx of two dots", body: policyOf("version: STSv1", "mode: enforce", "mx: mail.example.com..", "max_age: 1"), errText: "empty label"},
		{name: "mx *.*.example.com", body: policyOf("version: STSv1", "mode: enforce", "mx: *.*.example.com", "max_age: 1"), errText: `label "*"`},
		{name: "mx wildcard inside a label", body: policyOf("version: STSv1", "mode: enforce", "mx: mx*.example.com", "max_age: 1"), errText: `label "mx*"`},
		{name: "mx underscore", body: policyOf("version: STSv1", "mode: enforce", "mx: mail_1.example.com", "max_age: 1"), errText: `label "mail_1"`},
		{name: "mx leading hyphen", body: policyOf("version: STSv1", "mode: enforce", "mx: -mail.example.com", "max_age: 1"), errText: `label "-mail"`},
		{name: "mx label of 64", body: policyOf("version: STSv1", "mode: enforce", "mx: "+label64+".example.com", "max_age: 1"), errText: "is 64 octets, at most 63"},
		{name: "mx label of 63", body: policyOf("version: STSv1", "mode: enforce", "mx: "+label63+".example.com", "max_age: 1"),
			want: &Policy{Mode: ModeEnforce, MX: []string{label63 + ".example.com"}, MaxAge: time.Second}},
		{name: "mx name of 254", body: policyOf("version: STSv1", "mode: enforce", "mx: "+strings.Repeat(label63+".", 3)+strings.Repeat("a", 62), "max_age: 1"), errText: "is 254 octets, at most 253"},
		{name: "mx IDN U-label", body: policyOf("version: STSv1", "mode: enforce", "mx: *.bücher.example", "max_age: 1"),
			want: &Policy{Mode: ModeEnforce, MX: []string{"*.xn--bcher-kva.example"}, MaxAge: time.Second}},
		{name: "mx invalid A-label", body: policyOf("version: STSv1", "mode: enforce", "mx: xn--zz.example", "max_age: 1"), errText: "not a valid internationalized name"},
		{name: "mx uppercase lowercased", body: policyOf("version: STSv1", "mode: enforce", "mx: MAIL.Example.COM", "mx: *.EXAMPLE.net", "max_age: 1"),
			want: &Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: time.Second}},
		{name: "mx with mode none kept", body: policyOf("version: STSv1", "mode: none", "mx: mail.example.com", "max_age: 1"),
			want: &Policy{Mode: ModeNone, MX: []string{"mail.example.com"}, MaxAge: time.Second}},
		{name: "trailing blank lines", body: rfcExample + "\n\r\n\n", want: &Policy{Mode: ModeEnforce, MX: rfcMX, MaxAge: week}},
		{name: "blank line in the middle", body: policyOf("version: STSv1", "mode: none", "", "max_age: 1"), errText: "line 3: empty line before the end of the policy"},
		{name: "blank first line", body: "\n" + rfcExample, errText: "line 1: empty line"},
		{name: "line without colon", body: policyOf("version: STSv1", "mode none", "max_age: 1"), errText: `line 2: "mode none" has no ":"`},
		{name: "white space only line", body: policyOf("version: STSv1", "mode: none", "max_age: 1", " "), errText: `line 4: " " has no ":"`},
		{name: "lone CR ends no line", body: "version: STSv1\rmode: none\nmax_age: 1\n", errText: `line 1: version "STSv1\rmode: none"`},
		{name: "not UTF-8", body: policyOf("version: STSv1", "mode: none", "max_age: 1", "x: \xff"), errText: "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePolicy([]byte(tt.body))
			if tt.errText != "" {
				if !errors.Is(err, ErrPolicyInvalid) {
					t.Fatalf("ParsePolicy = %+v, %v; want ErrPolicyInvalid", got, err)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error %q does not say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy: %v", err)
			}
			want := *tt.want
			want.Text = strings.ReplaceAll(tt.body, "\r\n", "\n")
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("ParsePolicy =\n%+v\nwant\n%+v", *got, want)
			}
		})
	}
}

func TestParsePolicyErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := ParsePolicy([]byte(policyOf("version: STSv1", "mode: none", "max_age: -1")))
	const want = `mta-sts policy invalid: line 3: max_age "-1" is not 1 to 10 digits`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// TestAdmits checks RFC 8461 §4.1 matching through a parsed policy.
func TestAdmits(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(policyOf("version: STSv1", "mode: enforce",
		"mx: *.example.com", "mx: mail.example.org", "mx: *.bücher.example", "max_age: 86400")))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"a.example.com", true},
		{"example.com", false},
		{"a.b.example.com", false},
		{"A.EXAMPLE.COM.", true},
		{"mail.example.org", true},
		{"MAIL.example.org.", true},
		{"smtp.example.org", false},
		{"mx.xn--bcher-kva.example", true},
		{"MX.XN--BCHER-KVA.EXAMPLE.", true},
		{"mx.bücher.example", true},
		{"mx.bucher.example", false},
		{"mail.example.org.attacker.example", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			if got := p.Admits(tt.host); got != tt.want {
				t.Fatalf("Admits(%q) = %v, want %v (patterns %q)", tt.host, got, tt.want, p.MX)
			}
		})
	}
}
