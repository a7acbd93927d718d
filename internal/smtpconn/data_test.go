package smtpconn

import (
	"bufio"
	"bytes"
	"testing"
)

// TestDotStuffer checks RFC 5321 §4.5.2 transparency for every split of
// the input into two writes, so a line start falling on a write boundary
// is still seen.
func TestDotStuffer(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"a\r\n", "a\r\n"},
		{".\r\n", "..\r\n"},
		{"a\r\n.b\r\n..c\r\n", "a\r\n..b\r\n...c\r\n"},
		{"x.y\r\n.", "x.y\r\n..\r\n"},
		{"no end", "no end\r\n"},
		{"cr end\r", "cr end\r\n"},
	}
	for _, tc := range tests {
		for split := 0; split <= len(tc.in); split++ {
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			d := &dotStuffer{w: w, bol: true}
			d.Write([]byte(tc.in[:split]))
			d.Write([]byte(tc.in[split:]))
			if err := d.close(); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if buf.String() != tc.want {
				t.Errorf("stuff(%q split at %d) = %q, want %q", tc.in, split, buf.String(), tc.want)
			}
		}
	}
}
