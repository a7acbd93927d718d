package message

import (
	"bytes"
	"errors"
	"testing"
)

func TestCRLFWriter(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\nb\r\n", "a\r\nb\r\n"},
		{"a\nb\n", "a\r\nb\r\n"},
		{"a\rb\r", "a\r\nb\r\n"},
		{"a\r\r\nb", "a\r\n\r\nb"},
		{"x\n.\nMAIL FROM:<evil@x>\n", "x\r\n.\r\nMAIL FROM:<evil@x>\r\n"},
		{"\r\n.\r", "\r\n.\r\n"},
		{"\r\r\n\n\r", "\r\n\r\n\r\n\r\n"},
		{"a\n\rb", "a\r\n\r\nb"},
		{"", ""},
	}
	for _, tc := range tests {
		// Byte by byte too, so a CR split across writes is handled.
		for _, chunk := range []int{len(tc.in) + 1, 1, 2, 3} {
			var out bytes.Buffer
			w := NewCRLFWriter(&out)
			for i := 0; i < len(tc.in); i += chunk {
				w.Write([]byte(tc.in[i:min(i+chunk, len(tc.in))]))
			}
			w.Close()
			if out.String() != tc.want {
				t.Errorf("%q in chunks of %d → %q, want %q", tc.in, chunk, out.String(), tc.want)
			}
		}
	}
}

func TestSpoolSpillsToDisk(t *testing.T) {
	dir := t.TempDir()
	s := NewSpool(dir, 10)
	defer s.Close()
	s.Write([]byte("12345"))
	if s.OnDisk() {
		t.Fatal("5 bytes spilled with a 10-byte limit")
	}
	s.Write([]byte("67890abc\xc3\xa9"))
	if !s.OnDisk() || s.Size() != 15 || !s.EightBit() {
		t.Fatalf("onDisk=%v size=%d eightBit=%v", s.OnDisk(), s.Size(), s.EightBit())
	}
	for i := 0; i < 2; i++ {
		var b bytes.Buffer
		b.ReadFrom(s.Reader())
		if b.String() != "1234567890abc\xc3\xa9" {
			t.Fatalf("read %d: %q", i, b.String())
		}
	}
}

// TestLineLimit: a line of LineLimit octets, CRLF included, passes; one
// octet more fails with ErrLineTooLong, however it is split and whatever
// its line ending.
func TestLineLimit(t *testing.T) {
	const limit = 10
	ok := "12345678\r\n"    // 10 with CRLF
	long := "123456789\r\n" // 11
	for _, tc := range []struct {
		in   string
		fail bool
	}{
		{ok + ok, false},
		{long, true},
		{"12345678\n", false}, // bare LF made CRLF: 10
		{"123456789\n", true},
		{"12345678\r", false}, // held CR: 10 once ended
		{"123456789\r", true},
		{"12345678901", true}, // unterminated, already over
	} {
		for split := 1; split <= len(tc.in); split++ {
			var out bytes.Buffer
			w := NewCRLFWriter(&out)
			w.LineLimit = limit
			var err error
			for rest := tc.in; len(rest) > 0 && err == nil; {
				k := min(split, len(rest))
				_, err = w.Write([]byte(rest[:k]))
				rest = rest[k:]
			}
			if err == nil {
				err = w.Close()
			}
			if got := errors.Is(err, ErrLineTooLong); got != tc.fail {
				t.Errorf("%q split %d: error %v, want too long %v", tc.in, split, err, tc.fail)
			}
		}
	}
}
