package message

import (
	"bufio"
	"errors"
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
		h, _ := ReadHeader(bufio.NewReader(strings.NewReader(tc.msg)))
		if got := h.TLSRequiredNo(); got != tc.want {
			t.Errorf("TLSRequiredNo(%q) = %v, want %v", tc.msg, got, tc.want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		in     string
		fields []string // name=value (unfolded)
		size   int      // octets up to and including the empty line
		err    error
	}{
		{
			name:   "simple, body follows",
			in:     "From: a@x.test\r\nSubject: hi\r\n\r\nbody\r\n",
			fields: []string{"From=a@x.test", "Subject=hi"},
			size:   len("From: a@x.test\r\nSubject: hi\r\n\r\n"),
		},
		{
			name:   "folded field unfolds for inspection (RFC 5322 §2.2.3)",
			in:     "Subject: one\r\n two\r\n\tthree\r\n\r\n",
			fields: []string{"Subject=one two three"},
			size:   len("Subject: one\r\n two\r\n\tthree\r\n\r\n"),
		},
		{
			name:   "WSP before the colon (RFC 5322 §4.5, obs-optional)",
			in:     "Subject : old style\r\n\r\n",
			fields: []string{"Subject=old style"},
			size:   len("Subject : old style\r\n\r\n"),
		},
		{
			name:   "header only, no empty line",
			in:     "From: a@x.test\r\nTo: b@y.test",
			fields: []string{"From=a@x.test", "To=b@y.test"},
			size:   len("From: a@x.test\r\nTo: b@y.test"),
		},
		{
			name: "continuation first",
			in:   " folded\r\nFrom: a@x.test\r\n\r\n",
			err:  ErrMalformedHeader,
		},
		{
			name: "line without a colon",
			in:   "From a@x.test Mon Jan  1 00:00:00 2026\r\n\r\n",
			err:  ErrMalformedHeader,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := ReadHeader(bufio.NewReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			var got []string
			var raw strings.Builder
			for _, f := range h.Fields {
				got = append(got, f.Name+"="+f.Value)
				raw.Write(f.Raw)
			}
			if strings.Join(got, "|") != strings.Join(tt.fields, "|") {
				t.Errorf("fields = %q, want %q", got, tt.fields)
			}
			if h.Size != tt.size {
				t.Errorf("size = %d, want %d", h.Size, tt.size)
			}
			// Raw bytes are the input's, each field CRLF-terminated.
			want := strings.TrimSuffix(tt.in[:tt.size], "\r\n\r\n") + "\r\n"
			if raw.String() != want {
				t.Errorf("raw = %q, want %q", raw.String(), want)
			}
		})
	}
}
