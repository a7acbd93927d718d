package message

import (
	"strings"
	"testing"
)

func TestTLSRequiredNo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{"TLS-Required: No\r\nSubject: x\r\n\r\nbody\r\n", true},
		{"Subject: x\r\ntls-required:   no  \r\n\r\nbody\r\n", true},
		{"Subject: x\r\nTLS-Required: Yes\r\n\r\nbody\r\n", false},
		{"Subject: x\r\n\r\nTLS-Required: No\r\n", false}, // in the body
		{"Subject: x\r\nX-TLS-Required: No\r\n\r\n", false},
		{"", false},
	} {
		if got := TLSRequiredNo(strings.NewReader(tc.msg)); got != tc.want {
			t.Errorf("TLSRequiredNo(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}
