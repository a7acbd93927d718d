package relay

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestPrefixed: the trace header, then the body, whether read in small
// pieces or written out at once, and the latter without a copy buffer.
func TestPrefixed(t *testing.T) {
	head, body := "Received: by relay.test\r\n", strings.Repeat("line of the body\r\n", 2000)
	got, err := io.ReadAll(iotest.OneByteReader(&prefixed{head: []byte(head), body: strings.NewReader(body)}))
	if err != nil || string(got) != head+body {
		t.Errorf("Read: %d bytes, %v; want %d", len(got), err, len(head+body))
	}
	var buf bytes.Buffer
	n, err := (&prefixed{head: []byte(head), body: strings.NewReader(body)}).WriteTo(&buf)
	if err != nil || n != int64(len(head+body)) || buf.String() != head+body {
		t.Errorf("WriteTo: %d, %v", n, err)
	}
	h, b := []byte(head), []byte(body)
	allocs := testing.AllocsPerRun(50, func() {
		io.Copy(io.Discard, &prefixed{head: h, body: bytes.NewReader(b)})
	})
	if allocs > 2 {
		t.Errorf("io.Copy of a prefixed body: %v allocations, want at most 2 (the reader and its body)", allocs)
	}
}
