package mtasts

import "testing"

func TestMatchMX(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"mail.example.com", "MAIL.Example.COM.", true},
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "a.b.example.com", false}, // exactly one label (RFC 8461 §4.1)
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"mail.example.com", "mail.example.net", false},
		{"xn--bcher-kva.example", "XN--BCHER-KVA.example", true},
	}
	for _, tc := range tests {
		if got := MatchMX(tc.pattern, tc.host); got != tc.want {
			t.Errorf("MatchMX(%q, %q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
}
