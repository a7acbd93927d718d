package tlsrpt_test

import (
	"fmt"
	"time"

	"github.com/caliop/relay/tlsrpt"
)

// A report as a sender writes it, and where it goes.
func Example() {
	rec, err := tlsrpt.SelectTXT([]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:tlsrpt@example.net"})
	if err != nil {
		fmt.Println(err)
		return
	}
	day := tlsrpt.Day(time.Date(2026, 5, 17, 9, 30, 0, 0, time.UTC))
	r := &tlsrpt.Report{
		OrganizationName: "Example ISP",
		DateRange:        day,
		ContactInfo:      "postmaster@relay.example",
		ReportID:         "2026-05-17.example.net@relay.example",
		Policies: []tlsrpt.PolicyResult{{
			Policy:  tlsrpt.Policy{Type: tlsrpt.PolicyNone, Domain: "example.net"},
			Summary: tlsrpt.Summary{TotalSuccessful: 42},
		}},
	}
	b, _ := tlsrpt.Marshal(r)
	fmt.Println(tlsrpt.MailtoAddress(rec.RUA[0]))
	fmt.Println(tlsrpt.FileName("relay.example", "example.net", day))
	fmt.Println(string(b))
	// Output:
	// tlsrpt@example.net
	// relay.example!example.net!1778976000!1779062399.json.gz
	// {"organization-name":"Example ISP","date-range":{"start-datetime":"2026-05-17T00:00:00Z","end-datetime":"2026-05-17T23:59:59Z"},"contact-info":"postmaster@relay.example","report-id":"2026-05-17.example.net@relay.example","policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"example.net"},"summary":{"total-successful-session-count":42,"total-failure-session-count":0}}]}
}
