package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/caliop/relay/mtasts/stscache"
	"github.com/caliop/relay/resolver"
)

// stsReport describes what the MTA-STS cache says applies (RFC 8461 §5.1).
func stsReport(res stscache.Result) *MTASTS {
	s := &MTASTS{Record: res.Record, Source: string(res.Source), ID: res.ID}
	if res.RecordErr != nil {
		s.RecordError = res.RecordErr.Error()
	}
	if res.FetchErr != nil {
		s.FetchError = fmt.Sprintf("%s: %v", res.Failure, res.FetchErr)
	}
	if p := res.Policy; p != nil {
		s.Mode, s.MX, s.MaxAge = string(p.Mode), p.MX, int64(p.MaxAge/time.Second)
		s.Expires = res.Expires.UTC()
	}
	return s
}

// tlsRPT finds the TLS-RPT record (RFC 8460 §3): among the TXT records at
// _smtp._tls.<domain>, those that do not begin with "v=TLSRPTv1" are
// discarded, and unless exactly one remains the domain does not
// implement TLS-RPT.
func (c *Checker) tlsRPT(ctx context.Context, domain string) TLSRPT {
	name := "_smtp._tls." + domain
	txts, _, err := c.DNS.LookupTXT(ctx, name)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return TLSRPT{Error: "no record at " + name}
	case err != nil:
		return TLSRPT{Error: err.Error()}
	}
	var found []string
	for _, t := range txts {
		if rest, ok := strings.CutPrefix(t, "v=TLSRPTv1"); ok && (rest == "" || strings.ContainsAny(rest[:1], " \t;")) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return TLSRPT{Error: "no v=TLSRPTv1 record at " + name}
	case 1:
		return TLSRPT{Record: found[0]}
	}
	return TLSRPT{Error: fmt.Sprintf("%d v=TLSRPTv1 records at %s, RFC 8460 §3 wants one", len(found), name)}
}
