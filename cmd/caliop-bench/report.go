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

	fmt.Fprintf(w, "%-36s %8s %8s %8s %9s %14s %12s\n", "throughput", "sessions", "messages", "seconds", "msg/s", "caliop µs/msg", "sink µs/msg")
	for _, r := range d.Runs {
		name := "smtp-source → sink (plain)"
		cpu := ""
		if r.Target == "caliop" {
			name = "smtp-source → caliop → sink (TLS)"
			cpu = us(r.perMessage(r.CPU))
		}
		fmt.Fprintf(w, "%-36s %8d %8d %8.2f %9.0f %14s %12s\n", name, r.Sessions, r.Messages, r.Elapsed.Seconds(), r.Rate(), cpu, us(r.perMessage(r.SinkCPU)))
	}
	floor(w, d.Runs)
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

// floor prints, per session count, the medians over the runs of each
// pair (direct, then via Caliop): Caliop's CPU per message against the
// protocol floor, the server half (the sink taking the messages
// directly) plus the client half (the sink taking them from Caliop over
// TLS), the ratio computed within each pair.
func floor(w io.Writer, runs []sourceRun) {
	type pair struct{ direct, via sourceRun }
	bySessions := map[int][]pair{}
	var order []int
	for i := 0; i+1 < len(runs); i += 2 {
		a, b := runs[i], runs[i+1]
		if _, seen := bySessions[a.Sessions]; !seen {
			order = append(order, a.Sessions)
		}
		bySessions[a.Sessions] = append(bySessions[a.Sessions], pair{a, b})
	}
	fmt.Fprintf(w, "\n%-12s %6s %9s %9s %12s %12s %12s %14s\n", "medians", "runs", "direct/s", "caliop/s", "caliop µs", "server µs", "client µs", "caliop/(s+c)")
	for _, n := range order {
		ps := bySessions[n]
		var rd, rc, cal, srv, cli, ratio []float64
		for _, p := range ps {
			c := float64(p.via.perMessage(p.via.CPU))
			sv := float64(p.direct.perMessage(p.direct.SinkCPU))
			cl := float64(p.via.perMessage(p.via.SinkCPU))
			rd, rc = append(rd, p.direct.Rate()), append(rc, p.via.Rate())
			cal, srv, cli = append(cal, c), append(srv, sv), append(cli, cl)
			ratio = append(ratio, c/(sv+cl))
		}
		fmt.Fprintf(w, "%-12s %6d %9.0f %9.0f %12.0f %12.0f %12.0f %14.2f\n", fmt.Sprintf("%d sessions", n), len(ps),
			median(rd), median(rc), median(cal)/1e3, median(srv)/1e3, median(cli)/1e3, median(ratio))
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}
