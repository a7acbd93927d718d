package stscache

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/caliop/relay/resolver"
)

// WriteReport prints what r says about its domain for an operator (the
// `caliop mta-sts` command): the discovery record, the policy in force, its
// source and expiry, any fetch error, and which of the domain's MX hosts
// the policy admits.
func WriteReport(w io.Writer, r Result, mxs []resolver.MX, mxErr error, now time.Time) {
	fmt.Fprintf(w, "domain:  %s\n", r.Domain)
	if r.Record != "" {
		fmt.Fprintf(w, "record:  %s\n", r.Record)
	} else {
		fmt.Fprintf(w, "record:  none (%v)\n", r.RecordErr)
	}
	if r.FetchErr != nil {
		fmt.Fprintf(w, "fetch:   failed, %s: %v\n", r.Failure, r.FetchErr)
	}
	if r.Policy == nil {
		fmt.Fprintln(w, "policy:  none in force; mail goes as to a domain without MTA-STS")
	} else {
		fmt.Fprintf(w, "policy:  id %s, mode %s, max_age %d s\n", r.ID, r.Policy.Mode, int64(r.Policy.MaxAge/time.Second))
		switch r.Source {
		case SourceFetched:
			fmt.Fprintf(w, "source:  fetched now (%s)\n", r.Fetched.UTC().Format(time.RFC3339))
		default:
			fmt.Fprintf(w, "source:  cached, fetched %s\n", r.Fetched.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "expires: %s (in %s)\n", r.Expires.UTC().Format(time.RFC3339), r.Expires.Sub(now).Round(time.Minute))
	}
	switch {
	case mxErr != nil:
		fmt.Fprintf(w, "mx:      lookup failed: %v\n", mxErr)
	case len(mxs) == 0:
		fmt.Fprintln(w, "mx:      none (the domain itself, if it has an address)")
	default:
		fmt.Fprintln(w, "mx:")
		for _, mx := range mxs {
			verdict := ""
			if r.Policy != nil && len(r.Policy.MX) > 0 {
				verdict = "admitted"
				if !r.Policy.Admits(mx.Host) {
					verdict = "NOT admitted"
				}
			}
			fmt.Fprintf(w, "  %5d %-40s %s\n", mx.Pref, mx.Host, verdict)
		}
	}
	if r.Policy != nil {
		fmt.Fprintln(w, "policy text:")
		for line := range strings.Lines(strings.TrimRight(r.Policy.Text, "\n")) {
			fmt.Fprintf(w, "  %s", line)
		}
		fmt.Fprintln(w)
	}
}
