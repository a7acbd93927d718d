package tlsrpt

import (
	"errors"
	"slices"
	"testing"
)

func TestSelectTXT(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		txts []string
		rua  []string
		err  error
	}{
		{"mailto (RFC 8460 Appendix B.1)", []string{"v=TLSRPTv1;rua=mailto:reports@example.com"}, []string{"mailto:reports@example.com"}, nil},
		{"https (Appendix B.2)", []string{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt"}, []string{"https://reporting.example.com/v1/tlsrpt"}, nil},
		{"two URIs, blanks, trailing delimiter", []string{"v=TLSRPTv1 ; rua=mailto:a@example.com , https://r.example.com/x ;"}, []string{"mailto:a@example.com", "https://r.example.com/x"}, nil},
		{"other records discarded", []string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv10; rua=mailto:b@example.com"}, []string{"mailto:a@example.com"}, nil},
		{"extension field skipped", []string{"v=TLSRPTv1; ext=1; rua=mailto:a@example.com"}, []string{"mailto:a@example.com"}, nil},
		{"unknown scheme left out", []string{"v=TLSRPTv1; rua=ftp://x.example/,mailto:a@example.com"}, []string{"mailto:a@example.com"}, nil},
		{"none", []string{"v=spf1 -all"}, nil, ErrNoRecord},
		{"no TXT at all", nil, nil, ErrNoRecord},
		{"two records (§3: none)", []string{"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"}, nil, ErrMultipleRecords},
		{"no rua", []string{"v=TLSRPTv1;"}, nil, ErrBadRecord},
		{"http is not https", []string{"v=TLSRPTv1; rua=http://r.example.com/"}, nil, ErrBadRecord},
		{"rua twice", []string{"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com"}, nil, ErrBadRecord},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := SelectTXT(tc.txts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			var got []string
			for _, u := range rec.RUA {
				got = append(got, u.String())
			}
			if !slices.Equal(got, tc.rua) {
				t.Errorf("rua = %q, want %q", got, tc.rua)
			}
		})
	}
}

func TestMailtoAddress(t *testing.T) {
	t.Parallel()
	rec, err := ParseTXT("v=TLSRPTv1; rua=mailto:tls%2Dreports@example.com?subject=x")
	if err != nil {
		t.Fatal(err)
	}
	if a := MailtoAddress(rec.RUA[0]); a != "tls-reports@example.com" {
		t.Errorf("MailtoAddress = %q", a)
	}
}
