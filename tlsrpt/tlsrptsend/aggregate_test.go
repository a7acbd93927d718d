package tlsrptsend

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caliop/relay/tlsrpt"
)

const stsPolicy = "version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.example.com\nmax_age: 604800\n"

// TestDayReport: a day of outcomes, recorded by two runs of the relay
// around a restart, gives one report of that UTC day with the sessions
// counted per policy and the failures grouped.
func TestDayReport(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 5, 17, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, day)
	at := func(d time.Duration, o tlsrpt.Outcome) {
		e.clock.Set(day.Add(d))
		o.Domain = "Example.COM."
		e.r.Record(o)
	}
	sts := func(o tlsrpt.Outcome) tlsrpt.Outcome {
		o.Policy, o.PolicyText = tlsrpt.PolicySTS, stsPolicy
		return o
	}
	expired := sts(tlsrpt.Outcome{MX: "mx2.example.com", Result: tlsrpt.CertificateExpired, ReceivingIP: "192.0.2.2", SendingIP: "198.51.100.1", ReceivingHELO: "mx2.example.com", Detail: "x509: certificate has expired or is not yet valid"})

	// Just before and just after the day: other reports.
	at(-time.Millisecond, sts(tlsrpt.Outcome{MX: "mx1.example.com", Success: true}))
	// The first run.
	at(0, sts(tlsrpt.Outcome{MX: "mx1.example.com", ReceivingIP: "192.0.2.1", Success: true}))
	at(time.Hour, sts(tlsrpt.Outcome{MX: "mx1.example.com", ReceivingIP: "192.0.2.1", Success: true}))
	at(8*time.Hour, expired)
	at(9*time.Hour, tlsrpt.Outcome{Policy: tlsrpt.PolicySTS, Result: tlsrpt.STSPolicyFetchError, Detail: "mta-sts fetch: connection refused"})
	at(9*time.Hour, tlsrpt.Outcome{Policy: tlsrpt.PolicyTLSA, PolicyText: "3 1 1 abcd", MX: "mx3.example.com", Success: true})
	e.clock.Set(day.Add(10 * time.Hour))
	if err := e.r.Flush(); err != nil {
		t.Fatal(err)
	}
	// The second run.
	e.restart(t)
	at(12*time.Hour, sts(tlsrpt.Outcome{MX: "mx1.example.com", ReceivingIP: "192.0.2.1", Success: true}))
	other := expired
	other.ReceivingIP, other.Detail = "2001:db8::2", "x509: expired again"
	at(13*time.Hour, other)
	at(14*time.Hour, tlsrpt.Outcome{Policy: tlsrpt.PolicyTLSA, PolicyText: "3 1 1 ffff", MX: "MX4.example.com", Result: tlsrpt.TLSAInvalid, Detail: "no usable TLSA record"})
	expired.Detail = "a later detail does not split the group"
	at(24*time.Hour-time.Second, expired)
	at(24*time.Hour, sts(tlsrpt.Outcome{MX: "mx1.example.com", Success: true}))
	e.r.Record(tlsrpt.Outcome{Domain: "other.example", Policy: tlsrpt.PolicyNone, Success: true})

	rep, err := e.r.Report("example.com", day.Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, marshal(t, rep), `{
	  "organization-name": "Caliop Test",
	  "date-range": {"start-datetime": "2026-05-17T00:00:00Z", "end-datetime": "2026-05-17T23:59:59Z"},
	  "contact-info": "postmaster@relay.example",
	  "report-id": "2026-05-17.example.com@relay.example",
	  "policies": [
	    {
	      "policy": {"policy-type": "sts", "policy-domain": "example.com"},
	      "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
	      "failure-details": [
	        {"result-type": "sts-policy-fetch-error", "failed-session-count": 1, "failure-reason-code": "mta-sts fetch: connection refused"}
	      ]
	    },
	    {
	      "policy": {
	        "policy-type": "sts",
	        "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: *.example.com", "max_age: 604800"],
	        "policy-domain": "example.com",
	        "mx-host": ["mx1.example.com", "*.example.com"]
	      },
	      "summary": {"total-successful-session-count": 3, "total-failure-session-count": 3},
	      "failure-details": [
	        {"result-type": "certificate-expired", "sending-mta-ip": "198.51.100.1", "receiving-mx-hostname": "mx2.example.com",
	         "receiving-mx-helo": "mx2.example.com", "receiving-ip": "192.0.2.2", "failed-session-count": 2,
	         "failure-reason-code": "x509: certificate has expired or is not yet valid"},
	        {"result-type": "certificate-expired", "sending-mta-ip": "198.51.100.1", "receiving-mx-hostname": "mx2.example.com",
	         "receiving-mx-helo": "mx2.example.com", "receiving-ip": "2001:db8::2", "failed-session-count": 1,
	         "failure-reason-code": "x509: expired again"}
	      ]
	    },
	    {
	      "policy": {"policy-type": "tlsa", "policy-string": ["3 1 1 abcd"], "policy-domain": "example.com", "mx-host": ["mx3.example.com"]},
	      "summary": {"total-successful-session-count": 1, "total-failure-session-count": 0}
	    },
	    {
	      "policy": {"policy-type": "tlsa", "policy-string": ["3 1 1 ffff"], "policy-domain": "example.com", "mx-host": ["mx4.example.com"]},
	      "summary": {"total-successful-session-count": 0, "total-failure-session-count": 1},
	      "failure-details": [
	        {"result-type": "tlsa-invalid", "receiving-mx-hostname": "mx4.example.com", "failed-session-count": 1, "failure-reason-code": "no usable TLSA record"}
	      ]
	    }
	  ]
	}`)

	// The neighbouring days hold the sessions just outside.
	for _, d := range []time.Time{day.Add(-time.Hour), day.Add(25 * time.Hour)} {
		rep, err := e.r.Report("example.com", d)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Policies) != 1 || rep.Policies[0].Summary.TotalSuccessful != 1 || !rep.DateRange.Start.Equal(tlsrpt.Day(d).Start) {
			t.Errorf("report of %s: %+v", d, rep)
		}
	}
	if _, err := e.r.Report("example.com", day.Add(-48*time.Hour)); !errors.Is(err, ErrNoData) {
		t.Errorf("a day without sessions: %v, want ErrNoData", err)
	}
}

// TestRunFlushesAtEnd: counts recorded before Run ends survive a restart.
func TestRunFlushesAtEnd(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 5, 17, 10, 0, 0, 0, time.UTC)
	e := newEnv(t, day)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.r.Run(ctx); close(done) }()
	for range 3 {
		e.r.Record(tlsrpt.Outcome{Domain: "example.com", Policy: tlsrpt.PolicyNone, MX: "mx.example.com", Success: true})
	}
	cancel()
	<-done
	e.restart(t)
	rep, err := e.r.Report("example.com", day)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Summary.TotalSuccessful != 3 || rep.Policies[0].Policy.Type != tlsrpt.PolicyNone {
		t.Errorf("after restart: %+v", rep.Policies)
	}
}
