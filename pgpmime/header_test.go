package pgpmime

import (
	"bufio"
	"errors"
	"mime"
	"strings"
	"testing"
)

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
			err:  ErrMalformed,
		},
		{
			name: "line without a colon",
			in:   "From a@x.test Mon Jan  1 00:00:00 2026\r\n\r\n",
			err:  ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := readHeader(bufio.NewReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err != nil {
				return
			}
			var got []string
			var raw strings.Builder
			for _, f := range h.fields {
				got = append(got, f.name+"="+f.value)
				raw.Write(f.raw)
			}
			if strings.Join(got, "|") != strings.Join(tt.fields, "|") {
				t.Errorf("fields = %q, want %q", got, tt.fields)
			}
			if h.size != tt.size {
				t.Errorf("size = %d, want %d", h.size, tt.size)
			}
			// Raw bytes are the input's, each field CRLF-terminated.
			want := strings.TrimSuffix(tt.in[:tt.size], "\r\n\r\n") + "\r\n"
			if raw.String() != want {
				t.Errorf("raw = %q, want %q", raw.String(), want)
			}
		})
	}
}

func TestProtectContentType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		raw  string // "" for no Content-Type field
		want string
	}{
		{
			name: "absent: the RFC 2045 §5.2 default",
			want: "Content-Type: text/plain; charset=us-ascii; hp=\"cipher\"\r\n",
		},
		{
			name: "one line: original bytes kept, parameter folded on",
			raw:  "Content-Type: text/plain; charset=ISO-8859-1\r\n",
			want: "Content-Type: text/plain; charset=ISO-8859-1;\r\n hp=\"cipher\"\r\n",
		},
		{
			name: "folded original, trailing blanks",
			raw:  "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n protocol=\"application/pgp-signature\"; boundary=\"s\"  \r\n",
			want: "Content-Type: multipart/signed; micalg=pgp-sha256;\r\n protocol=\"application/pgp-signature\"; boundary=\"s\";\r\n hp=\"cipher\"\r\n",
		},
		{
			name: "trailing semicolon is not doubled",
			raw:  "Content-Type: text/html; charset=utf-8;\r\n",
			want: "Content-Type: text/html; charset=utf-8;\r\n hp=\"cipher\"\r\n",
		},
		{
			name: "an existing hp is replaced, not repeated",
			raw:  "Content-Type: text/plain; hp=\"clear\"\r\n",
			want: "Content-Type: text/plain; hp=cipher\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var f *field
			if tt.raw != "" {
				h, err := readHeader(bufio.NewReader(strings.NewReader(tt.raw + "\r\n")))
				if err != nil {
					t.Fatal(err)
				}
				f = &h.fields[0]
			}
			got := string(protectContentType(f))
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			// The result must parse, with hp=cipher (RFC 9788 §2.1.1).
			v := strings.Join(strings.Fields(strings.TrimPrefix(got, "Content-Type:")), " ")
			_, params, err := mime.ParseMediaType(v)
			if err != nil || params["hp"] != "cipher" {
				t.Errorf("ParseMediaType(%q) = %v, %v; want hp=cipher", v, params, err)
			}
		})
	}
}
