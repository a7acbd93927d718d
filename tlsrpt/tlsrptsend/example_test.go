package tlsrptsend_test

import (
	"fmt"
	"os"
	"time"

	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
	"github.com/caliop/relay/tlsrpt/tlsrptsend"
)

// The relay records an outcome per new session; the report of the day
// is built from the store. In the relay, DNS, HTTP and SendMail are set
// too and go r.Run(ctx) flushes and sends.
func Example() {
	dir, _ := os.MkdirTemp("", "tlsrpt")
	defer os.RemoveAll(dir)
	st, _ := store.Open(dir)
	now := time.Date(2026, 5, 17, 9, 30, 0, 0, time.UTC)
	r, err := tlsrptsend.New(tlsrptsend.Options{
		Store:            st,
		OrganizationName: "Example ISP",
		ContactInfo:      "postmaster@relay.example",
		Submitter:        "relay.example",
		Now:              func() time.Time { return now },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r.Record(tlsrpt.Outcome{Domain: "example.net", Policy: tlsrpt.PolicyNone, MX: "mx.example.net", Success: true})
	r.Record(tlsrpt.Outcome{Domain: "example.net", Policy: tlsrpt.PolicyNone, MX: "mx.example.net", ReceivingIP: "192.0.2.7", Result: tlsrpt.StartTLSNotSupported})
	rep, err := r.Report("example.net", now)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := rep.Policies[0]
	fmt.Println(rep.ReportID, p.Policy.Type, p.Summary.TotalSuccessful, p.Summary.TotalFailure)
	fmt.Println(p.FailureDetails[0].ResultType, p.FailureDetails[0].ReceivingMXHostname, p.FailureDetails[0].ReceivingIP)
	// Output:
	// 2026-05-17.example.net@relay.example no-policy-found 1 1
	// starttls-not-supported mx.example.net 192.0.2.7
}
