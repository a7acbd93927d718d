package message

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzCRLF: whatever the body and however it is split into writes, the
// output has no bare CR or LF (SMTP smuggling), equals the output of one
// write, and is left unchanged by a second pass.
// Longer runs: go test ./message -run XXX -fuzz FuzzCRLF
func FuzzCRLF(f *testing.F) {
	f.Add([]byte("a\r\nb\nc\rd\r\n.\r\n"), uint16(3))
	f.Add([]byte("\n.\n"), uint16(1))
	f.Add([]byte("x\r"), uint16(1))
	f.Add([]byte("\r\r\n\n"), uint16(2))
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		whole := normalise(t, in, len(in))
		parts := normalise(t, in, int(split))
		if !bytes.Equal(whole, parts) {
			t.Fatalf("%q: one write %q, writes split at %d %q", in, whole, split, parts)
		}
		for i, c := range whole {
			if c == '\r' && (i+1 >= len(whole) || whole[i+1] != '\n') || c == '\n' && (i == 0 || whole[i-1] != '\r') {
				t.Fatalf("%q: bare CR or LF at %d in %q", in, i, whole)
			}
		}
		if again := normalise(t, whole, len(whole)); !bytes.Equal(again, whole) {
			t.Fatalf("second pass changed %q to %q", whole, again)
		}
	})
}

// normalise writes in through a CRLFWriter in chunks of n bytes.
func normalise(t *testing.T, in []byte, n int) []byte {
	var out bytes.Buffer
	w := NewCRLFWriter(&out)
	if n <= 0 {
		n = 1
	}
	for rest := in; len(rest) > 0; {
		k := min(n, len(rest))
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzReadHeader: any input reads without panic; the fields' raw bytes
// are the input's, in order, and Size never passes the input's end; a
// field name holds no colon or control character.
// Longer runs: go test ./message -run XXX -fuzz FuzzReadHeader
func FuzzReadHeader(f *testing.F) {
	f.Add("From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n")
	f.Add("Subject: one\r\n two\r\n\tthree\r\n\r\n")
	f.Add(" folded\r\nFrom: a@x.test\r\n\r\n")
	f.Add("TLS-Required: No\r\n\r\n")
	f.Add("From a@x.test Mon Jan  1 00:00:00 2026\r\n\r\n")
	f.Add("To: b@y.test")
	f.Fuzz(func(t *testing.T, in string) {
		h, err := ReadHeader(bufio.NewReader(strings.NewReader(in)))
		if h.Err != err {
			t.Fatalf("Header.Err %v, ReadHeader's error %v", h.Err, err)
		}
		if h.Size > len(in) {
			t.Fatalf("Size %d past the input's %d octets", h.Size, len(in))
		}
		var raw strings.Builder
		for _, fl := range h.Fields {
			raw.Write(fl.Raw)
			if strings.ContainsAny(fl.Name, ":\r\n\x00 ") {
				t.Fatalf("field name %q", fl.Name)
			}
		}
		if err == nil && !strings.HasPrefix(in, strings.TrimSuffix(raw.String(), "\r\n")) {
			t.Fatalf("raw fields %q are not the start of the input %q", raw.String(), in)
		}
	})
}
