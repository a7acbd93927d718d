package tlsrpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRFCExample: the RFC 8460 Appendix C report parses, and Marshal
// writes the same report back (mx-host as the array the schema asks for).
func TestRFCExample(t *testing.T) {
	t.Parallel()
	fixture := readFixture(t, "rfc8460-example.json")
	r, err := Parse(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if r.OrganizationName != "Company-X" || r.ReportID != "5065427c-23d3-47ca-b6e0-946ea0e8c4be" || r.ContactInfo != "sts-reporting@company-x.example" {
		t.Errorf("header fields: %+v", r)
	}
	wantRange := DateRange{time.Date(2016, 4, 1, 0, 0, 0, 0, time.UTC), time.Date(2016, 4, 1, 23, 59, 59, 0, time.UTC)}
	if !r.DateRange.Start.Equal(wantRange.Start) || !r.DateRange.End.Equal(wantRange.End) {
		t.Errorf("date-range = %v", r.DateRange)
	}
	if len(r.Policies) != 1 {
		t.Fatalf("%d policies", len(r.Policies))
	}
	p := r.Policies[0]
	if p.Policy.Type != PolicySTS || p.Policy.Domain != "company-y.example" || !slices.Equal(p.Policy.MXHost, []string{"*.mail.company-y.example"}) || len(p.Policy.String) != 4 {
		t.Errorf("policy = %+v", p.Policy)
	}
	if p.Summary != (Summary{5326, 303}) {
		t.Errorf("summary = %+v", p.Summary)
	}
	if len(p.FailureDetails) != 3 || p.FailureDetails[1].ReceivingIP != "203.0.113.56" || p.FailureDetails[1].FailedSessionCount != 200 ||
		p.FailureDetails[2].FailureReasonCode != "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED" || p.FailureDetails[0].ResultType != CertificateExpired {
		t.Errorf("failure-details = %+v", p.FailureDetails)
	}

	out, err := Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, again) {
		t.Errorf("round trip differs:\n%+v\n%+v", r, again)
	}
	// Semantically the fixture itself, once its mx-host is an array.
	var want, got map[string]any
	json.Unmarshal(fixture, &want)
	json.Unmarshal(out, &got)
	pol := want["policies"].([]any)[0].(map[string]any)["policy"].(map[string]any)
	pol["mx-host"] = []any{pol["mx-host"]}
	if !reflect.DeepEqual(want, got) {
		t.Errorf("Marshal = %s\nwant the fixture", out)
	}
}

func TestParseQuirks(t *testing.T) {
	t.Parallel()
	day := Day(time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC))
	tests := []struct {
		file    string
		policy  Policy
		summary Summary
		fails   []int64
	}{
		{"quirks-zoneless.json", Policy{Type: PolicyNone, Domain: "example.net"}, Summary{12, 0}, nil},
		{"quirks-bom-arrays.json", Policy{Type: PolicySTS, Domain: "example.net",
			String: []string{"version: STSv1", "mode: enforce", "mx: mx1.example.net", "mx: mx2.example.net", "max_age: 604800"},
			MXHost: []string{"mx1.example.net", "mx2.example.net"}}, Summary{40, 2}, []int64{2}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			r, err := Parse(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !r.DateRange.Start.Equal(day.Start) || !r.DateRange.End.Equal(day.End) || r.DateRange.Start.Location() != time.UTC {
				t.Errorf("date-range = %v, want %v", r.DateRange, day)
			}
			if len(r.Policies) != 1 {
				t.Fatalf("%d policies", len(r.Policies))
			}
			p := r.Policies[0]
			if !reflect.DeepEqual(p.Policy, tc.policy) || p.Summary != tc.summary {
				t.Errorf("policy %+v %+v, want %+v %+v", p.Policy, p.Summary, tc.policy, tc.summary)
			}
			var fails []int64
			for _, f := range p.FailureDetails {
				fails = append(fails, f.FailedSessionCount)
			}
			if !slices.Equal(fails, tc.fails) {
				t.Errorf("failed-session-counts %v, want %v", fails, tc.fails)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"not json":       `<feedback/>`,
		"no date-range":  `{"organization-name":"x","policies":[]}`,
		"bad date":       `{"date-range":{"start-datetime":"yesterday","end-datetime":"today"}}`,
		"negative count": `{"date-range":{"start-datetime":"2024-03-05T00:00:00Z","end-datetime":"2024-03-05T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":-1}}]}`,
		"no policy-type": `{"date-range":{"start-datetime":"2024-03-05T00:00:00Z","end-datetime":"2024-03-05T23:59:59Z"},"policies":[{"policy":{"policy-domain":"x"}}]}`,
		"mx-host number": `{"date-range":{"start-datetime":"2024-03-05T00:00:00Z","end-datetime":"2024-03-05T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","mx-host":7}}]}`,
	} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestMarshalEmpty(t *testing.T) {
	t.Parallel()
	b, err := Marshal(&Report{DateRange: Day(time.Date(2024, 3, 5, 7, 0, 0, 0, time.FixedZone("x", 3600)))})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"organization-name":"","date-range":{"start-datetime":"2024-03-05T00:00:00Z","end-datetime":"2024-03-05T23:59:59Z"},"contact-info":"","report-id":"","policies":[]}`
	if string(b) != want {
		t.Errorf("Marshal = %s\nwant %s", b, want)
	}
}

func TestFileName(t *testing.T) {
	t.Parallel()
	r := Day(time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC))
	got := FileName("Mail.Sender.Example.", "bücher.example", r)
	want := "mail.sender.example!xn--bcher-kva.example!1709596800!1709683199.json.gz"
	if got != want {
		t.Errorf("FileName = %q, want %q", got, want)
	}
}

func TestGzip(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("x"), 1000)
	out, err := Gunzip(Gzip(in), 0)
	if err != nil || !bytes.Equal(in, out) {
		t.Fatalf("Gunzip(Gzip) = %d bytes, %v", len(out), err)
	}
	if _, err := Gunzip(Gzip(in), 999); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over the limit: %v, want ErrTooLarge", err)
	}
	if _, err := Gunzip(in, 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("not gzip: %v, want ErrMalformed", err)
	}
}
