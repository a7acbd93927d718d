package address

import (
	"strings"
	"testing"
)

// unquote undoes the writer's quoting the way go-smtp's parser does
// (quotes removed, quoted-pairs resolved), so that a written address can
// be parsed again as a server would receive it.
func unquote(written string) string {
	if !strings.HasPrefix(written, `"`) {
		return written
	}
	var b strings.Builder
	i := 1
	for ; i < len(written); i++ {
		c := written[i]
		if c == '\\' && i+1 < len(written) {
			i++
			b.WriteByte(written[i])
			continue
		}
		if c == '"' {
			break
		}
		b.WriteByte(c)
	}
	return b.String() + written[i+1:]
}

// FuzzParse: parse(write(parse(x))) == parse(x); the written form has no
// control character, and no space or ">" outside a quoted string.
// Longer runs: go test ./address -fuzz FuzzParse -fuzztime 5m
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"user@x.test", "a b@x.test", "s> RET=FULL ENVID=x@sender.test",
		`a"b\c@x.test`, "x@other.test@example.test", "üser@bücher.test",
		"u@[IPv6:2001:db8::1]", "a\x00b@x.test", "user@x.test.", ".@x", "",
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, in string, utf8 bool) {
		a, err := Parse(in, Recipient, utf8)
		if err != nil {
			return
		}
		w := a.String()
		checkWritten(t, w)
		b, err := Parse(unquote(w), Recipient, utf8)
		if err != nil {
			t.Fatalf("written form %q of %q does not parse: %v", w, in, err)
		}
		if b != a {
			t.Fatalf("round trip of %q: %+v, then %+v", in, a, b)
		}
	})
}

// checkWritten fails on a control character anywhere, or a space, "<" or
// ">" outside the quoted local part.
func checkWritten(t *testing.T, w string) {
	t.Helper()
	quoted := false
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c < ' ' || c == 0x7f {
			t.Fatalf("control character in written address %q", w)
		}
		switch {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == ' ' || c == '>' || c == '<'):
			t.Fatalf("%q outside quotes in written address %q", c, w)
		}
	}
	if quoted {
		t.Fatalf("unterminated quoted string in %q", w)
	}
}
