package tlsrpt

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any bytes decode to a report with a date range, or fail
// with ErrMalformed. The seeds are the RFC 8460 example and real quirks.
// Longer runs: go test ./tlsrpt -run XXX -fuzz FuzzParse
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"date-range":{}}`))
	f.Add([]byte("\xef\xbb\xbf[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse: %v does not wrap ErrMalformed", err)
			}
			return
		}
		if r.DateRange.Start.IsZero() || r.DateRange.End.IsZero() {
			t.Fatalf("report without a date range accepted: %q", b)
		}
	})
}

// FuzzParseTXT: a TLS-RPT record parses or fails with ErrBadRecord; every
// rua kept is a mailto: or https: URI.
// Longer runs: go test ./tlsrpt -run XXX -fuzz FuzzParseTXT
func FuzzParseTXT(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1; rua=mailto:reports@example.com",
		"v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt,mailto:a@b.example;",
		"v=TLSRPTv1; rua=ftp://x", "v=TLSRPTv2; rua=mailto:a@b", "v=TLSRPTv1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseTXT(txt)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("ParseTXT(%q): %v does not wrap ErrBadRecord", txt, err)
			}
			return
		}
		for _, u := range rec.RUA {
			if s := strings.ToLower(u.Scheme); s != "mailto" && s != "https" {
				t.Fatalf("ParseTXT(%q): rua %v", txt, u)
			}
			if a := MailtoAddress(u); strings.ContainsFunc(a, func(r rune) bool { return r < ' ' || r == 0x7f || strings.ContainsRune(" ,<>", r) }) {
				t.Fatalf("ParseTXT(%q): mailto address %q", txt, MailtoAddress(u))
			}
		}
	})
}
