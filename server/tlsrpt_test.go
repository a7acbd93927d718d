package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
	"github.com/caliop/relay/tlsrpt/tlsrptsend"
)

// TestPrintTLSRPT: the report the relay is counting is printed from the
// store in data_dir, with the configured organization.
func TestPrintTLSRPT(t *testing.T) {
	cfg, err := config.Parse([]byte("hostname: relay.example\ntlsrpt:\n  enabled: true\n  organization: Example ISP\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 5, 17, 13, 0, 0, 0, time.UTC)
	relay, err := tlsrptsend.New(tlsrptsend.Options{Store: st, Now: func() time.Time { return day }})
	if err != nil {
		t.Fatal(err)
	}
	relay.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicyNone, MX: "mx.example.com", Success: true})
	relay.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicyNone, MX: "mx.example.com", Result: tlsrpt.StartTLSNotSupported})
	if err := relay.Flush(); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := printTLSRPTDay(cfg, "example.com", day, &out); err != nil {
		t.Fatal(err)
	}
	r, err := tlsrpt.Parse(out.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.OrganizationName != "Example ISP" || r.ContactInfo != "postmaster@relay.example" || !r.DateRange.Start.Equal(tlsrpt.Day(day).Start) {
		t.Errorf("report header: %+v", r)
	}
	if len(r.Policies) != 1 || r.Policies[0].Summary != (tlsrpt.Summary{TotalSuccessful: 1, TotalFailure: 1}) ||
		r.Policies[0].FailureDetails[0].ResultType != tlsrpt.StartTLSNotSupported {
		b, _ := json.Marshal(r.Policies)
		t.Errorf("policies: %s", b)
	}

	err = PrintTLSRPT(cfg, "other.example", &out)
	if err == nil || !strings.Contains(err.Error(), "other.example") {
		t.Errorf("unknown domain: %v", err)
	}
}

// TestPrintTLSRPTDefaults: with the default configuration (reports not
// sent), the printed report still names its organization and contact,
// which RFC 8460 §4.4 requires.
func TestPrintTLSRPTDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte("hostname: relay.example\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	st, err := store.Open(cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 5, 17, 13, 0, 0, 0, time.UTC)
	relay, err := tlsrptsend.New(tlsrptsend.Options{Store: st, Now: func() time.Time { return day }})
	if err != nil {
		t.Fatal(err)
	}
	relay.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicyNone, MX: "mx.example.com", Success: true})
	if err := relay.Flush(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	var out bytes.Buffer
	if err := printTLSRPTDay(cfg, "example.com", day, &out); err != nil {
		t.Fatal(err)
	}
	r, err := tlsrpt.Parse(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if r.OrganizationName != "relay.example" || r.ContactInfo != "postmaster@relay.example" {
		t.Errorf("organization %q, contact %q; want the hostname and postmaster@ it", r.OrganizationName, r.ContactInfo)
	}
}
