package mtasts

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSelectRecord is the RFC 8461 §3.1 conformance table: which TXT
// records at _mta-sts.<domain> make a record, and why the others do not.
func TestSelectRecord(t *testing.T) {
	t.Parallel()
	rfcExample := readFixture(t, "rfc8461-3.1-record.txt")
	id32 := strings.Repeat("a1", 16)
	id33 := id32 + "b"
	tests := []struct {
		name    string
		txts    []string
		want    Record
		wantErr error  // nil: want is the result
		errText string // in the message
	}{
		{name: "RFC 8461 §3.1 example", txts: []string{rfcExample}, want: Record{ID: "20160831085700Z"}},
		{name: "beside non-STS records", txts: []string{"v=spf1 -all", "google-site-verification=abc", "v=STSv1; id=1"}, want: Record{ID: "1"}},
		{name: "two STS records", txts: []string{"v=STSv1; id=1", "v=STSv1; id=2"}, wantErr: ErrMultipleRecords, errText: "2 TXT records"},
		{name: "two STS records, one malformed", txts: []string{"v=STSv1; id=1", "v=STSv1"}, wantErr: ErrMultipleRecords},
		{name: "v not first: ignored", txts: []string{"id=1; v=STSv1"}, wantErr: ErrNoRecord, errText: "none of 1 TXT records"},
		{name: "no records", txts: nil, wantErr: ErrNoRecord},
		{name: "other version ignored", txts: []string{"v=STSv10; id=1"}, wantErr: ErrNoRecord},
		{name: "other version beside STSv1", txts: []string{"v=STSv2; id=2", "v=STSv1; id=1"}, want: Record{ID: "1"}},
		{name: "version is case-sensitive", txts: []string{"v=stsv1; id=1"}, wantErr: ErrNoRecord},
		{name: "leading space ignored", txts: []string{" v=STSv1; id=1"}, wantErr: ErrNoRecord},
		{name: "split strings joined", txts: []string{"v=STSv1; id=20" + "160831085700Z"}, want: Record{ID: "20160831085700Z"}},
		{name: "32-character id", txts: []string{"v=STSv1; id=" + id32}, want: Record{ID: id32}},
		{name: "33-character id", txts: []string{"v=STSv1; id=" + id33}, wantErr: ErrRecordSyntax, errText: `id "` + id33 + `" is 33 characters, at most 32`},
		{name: "missing id", txts: []string{"v=STSv1; foo=bar"}, wantErr: ErrRecordSyntax, errText: "no id field"},
		{name: "empty id", txts: []string{"v=STSv1; id="}, wantErr: ErrRecordSyntax, errText: "id is empty"},
		{name: "hyphen in id", txts: []string{"v=STSv1; id=2016-08-31"}, wantErr: ErrRecordSyntax, errText: `contains '-'`},
		{name: "non-ASCII in id", txts: []string{"v=STSv1; id=caf\u00e9"}, wantErr: ErrRecordSyntax, errText: "only letters and digits"},
		{name: "ID is an extension, not the id", txts: []string{"v=STSv1; ID=1"}, wantErr: ErrRecordSyntax, errText: "no id field"},
		{name: "extension fields", txts: []string{"v=STSv1; id=1; rua=mailto:x@example.com; a_b-c.d=x"},
			want: Record{ID: "1", Extensions: map[string]string{"rua": "mailto:x@example.com", "a_b-c.d": "x"}}},
		{name: "repeated extension: first kept", txts: []string{"v=STSv1; x=1; id=1; x=2"}, want: Record{ID: "1", Extensions: map[string]string{"x": "1"}}},
		{name: "extension name starts with _", txts: []string{"v=STSv1; id=1; _x=1"}, wantErr: ErrRecordSyntax, errText: `field name "_x"`},
		{name: "extension name of 33 characters", txts: []string{"v=STSv1; id=1; " + strings.Repeat("x", 33) + "=1"}, wantErr: ErrRecordSyntax, errText: "field name"},
		{name: "extension value with =", txts: []string{"v=STSv1; id=1; x=a=b"}, wantErr: ErrRecordSyntax, errText: `contains '='`},
		{name: "extension value empty", txts: []string{"v=STSv1; id=1; x="}, wantErr: ErrRecordSyntax, errText: "empty value"},
		{name: "field without =", txts: []string{"v=STSv1; id=1; x"}, wantErr: ErrRecordSyntax, errText: `field "x" has no "="`},
		{name: "trailing ;", txts: []string{"v=STSv1; id=1;"}, want: Record{ID: "1"}},
		{name: "trailing ; and space", txts: []string{"v=STSv1; id=1; "}, want: Record{ID: "1"}},
		{name: "no spaces", txts: []string{"v=STSv1;id=1"}, want: Record{ID: "1"}},
		{name: "spaces and tabs around ;", txts: []string{"v=STSv1 \t;\t id=1 ; x=y"}, want: Record{ID: "1", Extensions: map[string]string{"x": "y"}}},
		{name: "trailing space without ;", txts: []string{"v=STSv1; id=1 "}, wantErr: ErrRecordSyntax, errText: "white space after the last field"},
		{name: "fields separated by space", txts: []string{"v=STSv1; id=1 x=y"}, wantErr: ErrRecordSyntax, errText: `separated by ";"`},
		{name: "empty field", txts: []string{"v=STSv1; id=1;; x=y"}, wantErr: ErrRecordSyntax, errText: "empty field"},
		{name: "duplicate id", txts: []string{"v=STSv1; id=1; id=2"}, wantErr: ErrRecordSyntax, errText: `duplicate id field "id=2"`},
		{name: "v=STSv1 alone", txts: []string{"v=STSv1"}, wantErr: ErrRecordSyntax, errText: "no id field"},
		{name: "v=STSv1; alone", txts: []string{"v=STSv1;"}, wantErr: ErrRecordSyntax, errText: "no id field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := SelectRecord(tt.txts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("SelectRecord(%q) = %+v, %v; want error %v", tt.txts, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error %q does not say %q", err, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("SelectRecord(%q): %v", tt.txts, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("SelectRecord(%q) = %+v, want %+v", tt.txts, got, tt.want)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	t.Parallel()
	tests := []struct {
		txt     string
		wantID  string
		wantErr error
		errText string
	}{
		{txt: "v=STSv1; id=abc", wantID: "abc"},
		{txt: "id=1; v=STSv1", wantErr: ErrNoRecord, errText: `"id=1; v=STSv1" does not start with "v=STSv1"`},
		{txt: "v=STSv10; id=1", wantErr: ErrNoRecord},
		{txt: "v=STSv1; id=a.b", wantErr: ErrRecordSyntax, errText: `mta-sts record invalid: id "a.b" contains '.'`},
	}
	for _, tt := range tests {
		t.Run(tt.txt, func(t *testing.T) {
			t.Parallel()
			got, err := ParseRecord(tt.txt)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("ParseRecord(%q) error %v, want %v saying %q", tt.txt, err, tt.wantErr, tt.errText)
				}
				return
			}
			if err != nil || got.ID != tt.wantID {
				t.Fatalf("ParseRecord(%q) = %+v, %v; want id %q", tt.txt, got, err, tt.wantID)
			}
		})
	}
}
