package check

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteText prints r for an operator: the verdict first, then each MX
// host with its addresses and probes, then MTA-STS and TLS-RPT.
func (r Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "domain:   %s\n", r.Domain)
	fmt.Fprintf(w, "verdict:  %s (exit %d)\n", r.Verdict, r.ExitCode())
	fmt.Fprintf(w, "reason:   %s\n", r.Reason)
	if r.PolicySource != "" {
		fmt.Fprintf(w, "policy:   %s\n", r.PolicySource)
	}
	if r.MXError != "" {
		fmt.Fprintf(w, "mx:       lookup failed: %s\n", r.MXError)
	}
	for _, m := range r.MX {
		writeMX(w, m)
	}
	if s := r.MTASTS; s != nil {
		writeSTS(w, s)
	}
	if r.TLSRPT.Record != "" {
		fmt.Fprintf(w, "tls-rpt:  %s\n", r.TLSRPT.Record)
	} else {
		fmt.Fprintf(w, "tls-rpt:  none (%s)\n", r.TLSRPT.Error)
	}
	if l := r.Learned; l != nil {
		req := string(l.Requirement)
		if req == "" {
			req = "nothing yet"
		}
		fmt.Fprintf(w, "learned:  %s after %d authenticated sessions (%d by DANE), %d encrypted only; mx %s\n",
			req, l.Sessions, l.DANESessions, l.Encrypted, strings.Join(l.MX, ", "))
		fmt.Fprintf(w, "          %s\n", r.Requires)
	}
}

func writeMX(w io.Writer, m MX) {
	fmt.Fprintf(w, "\nmx %d %s (MX DNSSEC %s)", m.Preference, m.Host, yesNo(m.DNSSEC))
	if m.Implicit {
		fmt.Fprint(w, " implicit")
	}
	fmt.Fprintln(w)
	if m.Requirement != "" {
		fmt.Fprintf(w, "  requires:  %s\n", m.Requirement)
	}
	if m.STSAdmitted != nil {
		fmt.Fprintf(w, "  mta-sts:   admitted %s\n", yesNo(*m.STSAdmitted))
	}
	fmt.Fprintf(w, "  verdict:   %s: %s\n", m.Verdict, m.Reason)
	if t := m.TLSA; t != nil {
		switch {
		case t.Error != "":
			fmt.Fprintf(w, "  tlsa:      lookup failed: %s\n", t.Error)
		case len(t.Records) == 0:
			fmt.Fprintf(w, "  tlsa:      none at _25._tcp.%s (secure %s)\n", t.Name, yesNo(t.Secure))
		default:
			fmt.Fprintf(w, "  tlsa:      _25._tcp.%s (secure %s)\n", t.Name, yesNo(t.Secure))
			for _, rec := range t.Records {
				fmt.Fprintf(w, "             %s usable %s\n", rec.Record, yesNo(rec.Usable))
			}
		}
	}
	if m.AddressError != "" {
		fmt.Fprintf(w, "  addresses: %s\n", m.AddressError)
	}
	for _, a := range m.Addresses {
		writeAddress(w, a)
	}
}

func writeAddress(w io.Writer, a Address) {
	fmt.Fprintf(w, "  %s (DNSSEC %s)\n", a.Address, yesNo(a.DNSSEC))
	p := a.Probe
	if p.Error != "" {
		fmt.Fprintf(w, "    error:       %s\n", p.Error)
	} else {
		fmt.Fprintf(w, "    starttls:    %s\n", yesNo(p.STARTTLS))
	}
	if p.TLSError != "" {
		fmt.Fprintf(w, "    tls error:   %s\n", p.TLSError)
	}
	if p.TLSVersion != "" {
		fmt.Fprintf(w, "    tls:         %s, %s\n", p.TLSVersion, p.Cipher)
	}
	if c := p.Certificate; c != nil {
		fmt.Fprintf(w, "    certificate: %s, names %s\n", c.Subject, strings.Join(c.Names, " "))
		fmt.Fprintf(w, "                 issuer %s, valid %s to %s", c.Issuer, c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
		if c.Expired {
			fmt.Fprint(w, " EXPIRED")
		}
		fmt.Fprintln(w)
		if c.WebPKIValid {
			fmt.Fprintln(w, "    webpki:      valid for the MX name")
		} else {
			fmt.Fprintf(w, "    webpki:      invalid: %s\n", c.WebPKIError)
		}
	}
	for _, t := range p.TLSAMatch {
		fmt.Fprintf(w, "    tlsa match:  %s at depth %d\n", t.Record, t.Depth)
	}
	if p.TLSAVerified != nil {
		if *p.TLSAVerified {
			fmt.Fprintln(w, "    dane:        verified")
		} else {
			fmt.Fprintf(w, "    dane:        failed: %s\n", p.TLSAError)
		}
	}
	if a.Verdict != "" {
		fmt.Fprintf(w, "    verdict:     %s: %s\n", a.Verdict, a.Reason)
	}
}

func writeSTS(w io.Writer, s *MTASTS) {
	fmt.Fprintln(w)
	if s.Record != "" {
		fmt.Fprintf(w, "mta-sts:  record %s\n", s.Record)
	} else {
		fmt.Fprintf(w, "mta-sts:  no record (%s)\n", s.RecordError)
	}
	if s.FetchError != "" {
		fmt.Fprintf(w, "          fetch failed: %s\n", s.FetchError)
	}
	if s.Mode == "" {
		fmt.Fprintln(w, "          no policy in force")
		return
	}
	fmt.Fprintf(w, "          policy %s, mode %s, max_age %d s, %s, expires %s\n", s.ID, s.Mode, s.MaxAge, s.Source, s.Expires.Format(time.RFC3339))
	fmt.Fprintf(w, "          mx %s\n", strings.Join(s.MX, " "))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
