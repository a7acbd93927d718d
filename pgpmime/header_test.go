package pgpmime

import (
	"bufio"
	"mime"
	"strings"
	"testing"

	"github.com/caliop/relay/message"
)

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
			var f *message.Field
			if tt.raw != "" {
				h, err := message.ReadHeader(bufio.NewReader(strings.NewReader(tt.raw + "\r\n")))
				if err != nil {
					t.Fatal(err)
				}
				f = &h.Fields[0]
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
