package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

type reportData struct {
	Version string
	Runs    []sourceRun
	Direct  latency
	Via     latency
	RSS     int64
	Sink    sinkCounts
	DNS     map[string]int64 // queries caliop sent to the bench DNS server
}

func report(w io.Writer, o options, d reportData) {
	conn := "one connection per message"
	if o.keepConn {
		conn = "connection kept per session (-d)"
	}
	fmt.Fprintf(w, "Caliop benchmark: %s\n", d.Version)
	fmt.Fprintf(w, "machine: %s\n", machine())
	fmt.Fprintf(w, "load: smtp-source, %d-byte payload, one recipient @%s, %s; caliop log level %s\n\n", o.size, o.domain, conn, o.logLevel)

	fmt.Fprintf(w, "%-36s %8s %8s %8s %9s %12s\n", "throughput", "sessions", "messages", "seconds", "msg/s", "caliop CPU s")
	for _, r := range d.Runs {
		name := "smtp-source → sink (plain)"
		cpu := ""
		if r.Target == "caliop" {
			name = "smtp-source → caliop → sink (TLS)"
			cpu = fmt.Sprintf("%.2f", r.CPU.Seconds())
		}
		fmt.Fprintf(w, "%-36s %8d %8d %8.2f %9.0f %12s\n", name, r.Sessions, r.Messages, r.Elapsed.Seconds(), r.Rate(), cpu)
	}
	for i := 0; i+1 < len(d.Runs); i += 2 {
		a, b := d.Runs[i], d.Runs[i+1]
		fmt.Fprintf(w, "  %d sessions: via caliop = %.0f%% of direct\n", a.Sessions, 100*b.Rate()/a.Rate())
	}

	fmt.Fprintf(w, "\n%-36s %10s %10s\n", fmt.Sprintf("latency, %d sequential messages", o.latencyN), "p50", "p99")
	lat := func(name string, direct, via []time.Duration) {
		p := func(d []time.Duration, q float64) time.Duration { return percentile(d, q) }
		fmt.Fprintf(w, "%-36s %10s %10s\n", name+", direct", ms(p(direct, 50)), ms(p(direct, 99)))
		fmt.Fprintf(w, "%-36s %10s %10s\n", name+", via caliop", ms(p(via, 50)), ms(p(via, 99)))
		fmt.Fprintf(w, "%-36s %10s %10s\n", "  added by caliop", ms(p(via, 50)-p(direct, 50)), ms(p(via, 99)-p(direct, 99)))
	}
	lat("end of DATA", d.Direct.EndOfData, d.Via.EndOfData)
	lat("MAIL..end of DATA", d.Direct.Whole, d.Via.Whole)

	fmt.Fprintf(w, "\ncaliop peak RSS (VmHWM): %.1f MiB\n", float64(d.RSS)/(1<<20))
	fmt.Fprintf(w, "sink totals: %d connections, %d messages (%d over TLS), %.1f MiB\n", d.Sink.Connections, d.Sink.Messages, d.Sink.TLSMessages, float64(d.Sink.Bytes)/(1<<20))
	var total int64
	var kinds []string
	for k, n := range d.DNS {
		total += n
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(kinds)
	fmt.Fprintf(w, "DNS queries from caliop: %d (%s)\n", total, strings.Join(kinds, ", "))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}
