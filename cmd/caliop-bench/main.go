// Command bench measures what Caliop costs on the outbound path: Postfix's
// load generator smtp-source sends to a TLS-capable sink directly, then
// through Caliop's SMTP listener, and a Go client times sequential
// transactions both ways. Everything runs on 127.0.0.1 and ends by itself.
//
//	smtp-source ──plain SMTP──▶ sink                      (direct)
//	smtp-source ──plain SMTP──▶ caliop ──STARTTLS──▶ sink (via caliop)
//
// Components, all started here: a DNS server answering the bench domain's
// MX (mx.<domain> → 127.0.0.1), the sink (go-smtp, self-signed certificate,
// STARTTLS offered, bodies discarded), and caliop serve with
// outbound.smtp, mx_port set to the sink and default: encrypt, so every
// message Caliop relays crosses a real TLS handshake or a reused TLS
// connection (reuse: idle 10s, max_messages 100).
//
// Reported: messages per second for each smtp-source run (all messages go
// to one recipient domain, as Caliop's SMTP listener takes one destination
// domain per transaction), the end-of-DATA and whole-transaction latency
// p50/p99 of sequential messages on one connection and what Caliop adds,
// Caliop's CPU time per run and its peak RSS (VmHWM).
//
// Also reported, per session count: Caliop's CPU per message against the
// protocol floor, the server half (the sink's CPU taking the messages
// straight from smtp-source) plus the client half (the sink's CPU taking
// them from Caliop over TLS), medians over -repeat runs.
//
// Run it with `make bench`, or:
//
//	go run ./cmd/caliop-bench [-caliop bin/caliop] [-sessions 20,100] [-messages 20000,20000] [-repeat 5] [-d=false]
//
// With -mix 1,100,1000,10000 it runs a provider's destination mix
// instead (make bench-mix; mix.go, mixworld.go).
//
// It needs smtp-source from the postfix package (not a running Postfix).
// Every run checks that the sink received exactly the messages sent and,
// via Caliop, all over TLS; a mismatch fails the benchmark.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/caliop/relay/internal/e2e"
	"github.com/caliop/relay/internal/testworld/dnstest"
)

type options struct {
	caliop     string
	sessions   []int
	messages   []int
	size       int
	latencyN   int
	keepConn   bool
	domain     string
	logLevel   string
	runTimeout time.Duration
	keep       bool
	repeat     int
	// The provider's mix (-mix): domain counts, messages per pass,
	// LMTP sessions.
	mix         []int
	mixMessages int
	mixWarmup   int
	mixSessions int
}

func main() {
	var o options
	var sessions, messages string
	flag.StringVar(&o.caliop, "caliop", "", "caliop binary (default: build one)")
	flag.StringVar(&sessions, "sessions", "20,100", "smtp-source parallel sessions, one run each")
	flag.StringVar(&messages, "messages", "20000,20000", "messages per run, one per -sessions value (runs of a few seconds: shorter ones are noisy)")
	flag.IntVar(&o.size, "size", 4096, "message payload bytes (smtp-source -l)")
	flag.IntVar(&o.latencyN, "latency", 500, "sequential messages for the latency measure")
	flag.BoolVar(&o.keepConn, "d", true, "smtp-source -d: keep each session's connection for its next message")
	flag.StringVar(&o.domain, "domain", "bench.test", "destination domain")
	flag.StringVar(&o.logLevel, "log", "info", "caliop log level (output goes to a file)")
	flag.DurationVar(&o.runTimeout, "timeout", 90*time.Second, "bound on each run")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (config, caliop log)")
	flag.IntVar(&o.repeat, "repeat", 1, "runs of each throughput measure; the report gives medians")
	var mix string
	flag.StringVar(&mix, "mix", "", "run the provider's mix instead, for these domain counts (e.g. 1,100,1000,10000); needs root for port 443 of 127.0.2.k, one per domain count")
	flag.IntVar(&o.mixMessages, "mix-messages", 5000, "messages per mix pass")
	flag.IntVar(&o.mixSessions, "mix-sessions", 20, "LMTP sessions of the mix")
	flag.IntVar(&o.mixWarmup, "mix-warmup", 0, "messages of the cold pass (0: as -mix-messages)")
	flag.Parse()
	var err error
	if o.sessions, err = ints(sessions); err == nil {
		o.messages, err = ints(messages)
	}
	if err == nil && mix != "" {
		o.mix, err = ints(mix)
	}
	if err == nil && len(o.sessions) != len(o.messages) {
		err = fmt.Errorf("-sessions and -messages differ in length")
	}
	if err == nil {
		err = run(context.Background(), o, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, w io.Writer) error {
	source, err := lookPath("smtp-source")
	if err != nil {
		return fmt.Errorf("smtp-source (package postfix) not found: %w", err)
	}
	dir, cleanup, err := workDir(ctx, &o, w)
	if err != nil {
		return err
	}
	defer cleanup()
	version, _ := exec.Command(o.caliop, "version").Output()
	if len(o.mix) > 0 {
		fmt.Fprintf(w, "Caliop benchmark: %s\n", strings.TrimSpace(string(version)))
		return runMix(ctx, o, dir, w)
	}

	wd, err := startWorld(o, dir)
	if err != nil {
		return err
	}
	defer wd.close()
	dns, sk, proc, smtpAddr, logf := wd.dns, wd.sink, wd.proc, wd.smtp, wd.log

	if err := firstMessage(o, sk, smtpAddr, logf.Name()); err != nil {
		return err
	}

	runs, err := throughput(ctx, o, source, proc, sk, smtpAddr)
	if err != nil {
		return err
	}
	direct, via, err := latencies(o, sk, smtpAddr)
	if err != nil {
		return err
	}
	rss, err := proc.PeakRSS()
	if err != nil {
		return err
	}
	if exited, err := proc.Exited(); exited {
		return fmt.Errorf("caliop exited during the benchmark: %v", err)
	}

	report(w, o, reportData{
		Version: strings.TrimSpace(string(version)),
		Runs:    runs,
		Direct:  direct,
		Via:     via,
		RSS:     rss,
		Sink:    sk.Counts(),
		DNS:     queryCounts(dns.Queries()),
	})
	if err := proc.Stop(10 * time.Second); err != nil {
		return err
	}
	return nil
}

// world is what a benchmark runs in: a fake DNS, a TLS sink as the MX,
// and Caliop between them.
type world struct {
	dns  *dnstest.Server
	sink *sink
	proc *e2e.Process
	smtp string   // Caliop's SMTP listener
	log  *os.File // Caliop's log
}

// startWorld starts the world of o in dir.
func startWorld(o options, dir string) (_ *world, err error) {
	wd := &world{}
	defer func() {
		if err != nil {
			wd.close()
		}
	}()
	if wd.dns, err = startDNS(o.domain); err != nil {
		return nil, err
	}
	if wd.sink, err = startSink("mx." + o.domain); err != nil {
		return nil, err
	}
	if wd.smtp, err = e2e.FreeAddr(); err != nil {
		return nil, err
	}
	metrics, err := e2e.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, sinkPort, _ := strings.Cut(wd.sink.Addr, ":")
	mxPort, _ := strconv.Atoi(sinkPort)
	if wd.log, err = os.Create(filepath.Join(dir, "caliop.log")); err != nil {
		return nil, err
	}
	wd.proc, err = e2e.Start(o.caliop, dir, e2e.Config{
		Hostname: "relay.test",
		DataDir:  filepath.Join(dir, "data"),
		DNS:      wd.dns.Addr,
		SMTP:     wd.smtp,
		Metrics:  metrics,
		MXPort:   mxPort,
		Default:  "encrypt",
		LogLevel: o.logLevel,
	}, wd.log)
	return wd, err
}

// close stops what startWorld started.
func (wd *world) close() {
	if wd.proc != nil {
		wd.proc.Stop(10 * time.Second)
	}
	if wd.log != nil {
		wd.log.Close()
	}
	if wd.sink != nil {
		wd.sink.Close()
	}
	if wd.dns != nil {
		wd.dns.Close()
	}
}

// workDir makes the run's directory (kept with -keep) and builds Caliop
// there unless -caliop names a binary.
func workDir(ctx context.Context, o *options, w io.Writer) (dir string, cleanup func(), err error) {
	if dir, err = os.MkdirTemp("", "caliop-bench-"); err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if o.keep {
		fmt.Fprintln(w, "work directory:", dir)
		cleanup = func() {}
	}
	if o.caliop == "" {
		o.caliop = filepath.Join(dir, "caliop")
		if err := e2e.Build(ctx, o.caliop); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	return dir, cleanup, nil
}

// firstMessage sends one message through Caliop first: a wrong setup
// fails here, not after minutes.
func firstMessage(o options, sk *sink, smtpAddr, logName string) error {
	before := sk.Counts()
	if _, err := measureLatency(o, smtpAddr, 1); err != nil {
		return fmt.Errorf("first message through caliop: %w (log: %s)", err, logName)
	}
	if d := sub(sk.Counts(), before); d.Messages != 1 || d.TLSMessages != 1 {
		return fmt.Errorf("first message through caliop: sink got %+v, want 1 message over TLS", d)
	}
	return nil
}

// throughput runs smtp-source straight to the sink and through Caliop,
// for each session count of o.
func throughput(ctx context.Context, o options, source string, proc *e2e.Process, sk *sink, smtpAddr string) ([]sourceRun, error) {
	var runs []sourceRun
	for rep := 0; rep < o.repeat; rep++ {
		for i, s := range o.sessions {
			for _, target := range []string{"direct", "caliop"} {
				addr := sk.Addr
				if target == "caliop" {
					addr = smtpAddr
				}
				r := sourceRun{Target: target, Addr: addr, Sessions: s, Messages: o.messages[i]}
				before, cpu0, self0 := sk.Counts(), cpuTime(proc.Pid()), cpuTime(os.Getpid())
				elapsed, err := runSource(ctx, source, o, addr, s, r.Messages)
				if err != nil {
					return nil, err
				}
				r.Elapsed = elapsed
				// The last reply came after the sink's, so counters are final.
				r.Sink, r.SinkCPU = sub(sk.Counts(), before), cpuTime(os.Getpid())-self0
				if target == "caliop" {
					r.CPU = cpuTime(proc.Pid()) - cpu0
				}
				if err := r.check(); err != nil {
					return nil, err
				}
				runs = append(runs, r)
				fmt.Fprintf(os.Stderr, "bench: %s, %d sessions: %d messages in %.2fs\n", target, s, r.Messages, elapsed.Seconds())
			}
		}
	}
	return runs, nil
}

// latencies measures one message at a time, straight to the sink and
// through Caliop.
func latencies(o options, sk *sink, smtpAddr string) (direct, via latency, err error) {
	direct, err = measureLatency(o, sk.Addr, o.latencyN)
	if err != nil {
		return direct, via, fmt.Errorf("latency direct: %w", err)
	}
	before := sk.Counts()
	via, err = measureLatency(o, smtpAddr, o.latencyN)
	if err != nil {
		return direct, via, fmt.Errorf("latency via caliop: %w", err)
	}
	if d := sub(sk.Counts(), before); d.Messages != int64(o.latencyN) || d.TLSMessages != d.Messages {
		return direct, via, fmt.Errorf("latency via caliop: sink got %+v, want %d messages over TLS", d, o.latencyN)
	}
	return direct, via, nil
}

// check verifies that the sink got exactly the messages of the run, and
// all over TLS when they went through Caliop.
func (r sourceRun) check() error {
	want := int64(r.Messages)
	if r.Sink.Messages != want {
		return fmt.Errorf("%s, %d sessions: sink received %d messages, smtp-source sent %d", r.Target, r.Sessions, r.Sink.Messages, want)
	}
	if r.Target == "caliop" && r.Sink.TLSMessages != want {
		return fmt.Errorf("caliop, %d sessions: %d of %d messages reached the sink without TLS", r.Sessions, want-r.Sink.TLSMessages, want)
	}
	return nil
}

func add(a, b sinkCounts) sinkCounts {
	return sinkCounts{a.Connections + b.Connections, a.Messages + b.Messages, a.TLSMessages + b.TLSMessages, a.Bytes + b.Bytes}
}

func sub(a, b sinkCounts) sinkCounts {
	return sinkCounts{a.Connections - b.Connections, a.Messages - b.Messages, a.TLSMessages - b.TLSMessages, a.Bytes - b.Bytes}
}

// cpuTime returns the user+system CPU time of pid from /proc/PID/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // USER_HZ, fixed at 100 for Linux's /proc ABI
	return time.Duration(ut+st) * time.Second / userHZ
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		c := filepath.Join(dir, name)
		if _, e := os.Stat(c); e == nil {
			return c, nil
		}
	}
	return "", err
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d × %s, %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
