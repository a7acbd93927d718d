package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/e2e"
)

// mixRun is one pass of the provider's mix through Caliop's LMTP
// listener.
type mixRun struct {
	Domains    int
	Messages   int
	Rcpts      int
	Refused    int // recipients not answered 250
	Elapsed    time.Duration
	CPU        time.Duration // caliop's
	DNS        int64         // queries caliop sent
	STSFetches int64
	WKDFetches int64
	Handshakes int64 // TLS handshakes the sinks completed
	Sink       sinkCounts
	Latency    []time.Duration // per LMTP transaction, MAIL to the last reply
}

// runMix runs the mix for each domain count of o.mix, o.repeat times.
// A repetition starts, for each count, a world of that many domains and
// a fresh Caliop on it, and sends it a first pass (cold: policies
// fetched, keys looked up, connections opened; o.mixWarmup messages, or
// o.mixMessages). Then the measured passes of o.mixMessages each follow
// one another, one per count, within seconds (each after mixRewarm
// messages not measured): the ratios between them are not made of the
// virtual machine's drift over minutes.
func runMix(ctx context.Context, o options, dir string, w io.Writer) error {
	fmt.Fprintf(w, "Caliop provider mix: LMTP, %d sessions, %d-byte messages, 1 to 4 recipients (mean 2.5), domains drawn Zipf (s=%.1f); machine: %s\n",
		o.mixSessions, o.size, mixZipfS, machine())
	fmt.Fprintf(w, "%8s %5s %8s %8s %10s %9s %10s %8s %8s %8s %8s %8s %8s %8s  %s\n",
		"domains", "pass", "messages", "msg/s", "cpu µs/msg", "deliv/msg", "µs/deliv", "dns/msg", "sts get", "wkd get", "tls/msg", "p50 ms", "p99 ms", "rss MiB", "series, sizes")
	var warm []mixWarm
	for rep := range max(o.repeat, 1) {
		runs, err := mixRepetition(ctx, o, dir, w)
		if err != nil {
			return err
		}
		for i := range runs {
			runs[i].rep = rep
		}
		warm = append(warm, runs...)
	}
	mixMedians(w, o, warm)
	return nil
}

// mixRepetition is one repetition of runMix: its warm passes.
func mixRepetition(ctx context.Context, o options, dir string, w io.Writer) ([]mixWarm, error) {
	var setups []*mixSetup
	defer func() {
		for _, s := range setups {
			s.close()
		}
	}()
	for i, n := range o.mix {
		s, err := startMix(o, dir, n, fmt.Sprintf("127.0.2.%d", i+1))
		if err != nil {
			return nil, fmt.Errorf("mix of %d domains: %w", n, err)
		}
		setups = append(setups, s)
		count := cmpOr(o.mixWarmup, o.mixMessages)
		if _, err := s.pass(ctx, o, "cold", count, 0, w); err != nil {
			return nil, fmt.Errorf("mix of %d domains: %w", n, err)
		}
	}
	var out []mixWarm
	for _, s := range setups {
		// The others' passes left this Caliop idle past
		// outbound.reuse.idle: a few messages, not measured, open its
		// connections again, as a relay in service never idles.
		if _, err := s.pass(ctx, o, "", mixRewarm, 2, nil); err != nil {
			return nil, fmt.Errorf("mix of %d domains: %w", s.world.domains, err)
		}
		m, err := s.pass(ctx, o, "warm", o.mixMessages, 1, w)
		if err != nil {
			return nil, fmt.Errorf("mix of %d domains: %w", s.world.domains, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// mixWarm is what the medians are made of: one warm pass.
type mixWarm struct {
	rep, domains     int
	rate, perMsg     float64 // msg/s, CPU µs per message
	perDelivery, rss float64 // CPU µs per downstream delivery, MiB
}

// mixMedians prints, per domain count, the medians over the repetitions
// of the warm passes, and the CPU against the first domain count's (the
// single-domain figure when -mix starts with 1), each ratio computed
// within one repetition.
func mixMedians(w io.Writer, o options, runs []mixWarm) {
	base := map[int]mixWarm{}
	for _, r := range runs {
		if r.domains == o.mix[0] {
			base[r.rep] = r
		}
	}
	fmt.Fprintf(w, "\nmedians of %d warm passes; ratios against %d domain(s), within each repetition\n", max(o.repeat, 1), o.mix[0])
	fmt.Fprintf(w, "%8s %8s %10s %10s %12s %12s %8s\n", "domains", "msg/s", "cpu µs/msg", "µs/deliv", "×, per msg", "×, per deliv", "rss MiB")
	for _, n := range o.mix {
		var rate, msg, del, rm, rd, rss []float64
		for _, r := range runs {
			if r.domains != n {
				continue
			}
			b := base[r.rep]
			rate, msg, del, rss = append(rate, r.rate), append(msg, r.perMsg), append(del, r.perDelivery), append(rss, r.rss)
			rm, rd = append(rm, r.perMsg/b.perMsg), append(rd, r.perDelivery/b.perDelivery)
		}
		fmt.Fprintf(w, "%8d %8.0f %10.0f %10.0f %12.2f %12.2f %8.1f\n", n, median(rate), median(msg), median(del), median(rm), median(rd), median(rss))
	}
}

// mixSetup is one domain count's world and the Caliop delivering into it.
type mixSetup struct {
	world         *mixWorld
	proc          *e2e.Process
	lmtp, metrics string
	log           *os.File
}

// startMix starts n domains' world, its HTTPS server on httpsIP, and a
// Caliop on it.
func startMix(o options, dir string, n int, httpsIP string) (_ *mixSetup, err error) {
	dir, err = os.MkdirTemp(dir, fmt.Sprintf("mix-%d-", n))
	if err != nil {
		return nil, err
	}
	s := &mixSetup{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.world, err = startMixWorld(n, dir, httpsIP); err != nil {
		return nil, err
	}
	if s.lmtp, err = e2e.FreeAddr(); err != nil {
		return nil, err
	}
	if s.metrics, err = e2e.FreeAddr(); err != nil {
		return nil, err
	}
	if s.log, err = os.Create(filepath.Join(dir, "caliop.log")); err != nil {
		return nil, err
	}
	s.proc, err = e2e.Start(o.caliop, dir, e2e.Config{
		DataDir: filepath.Join(dir, "data"), DNS: s.world.dns.Addr, LMTP: s.lmtp, Metrics: s.metrics,
		MXPort: s.world.mxPort(), LogLevel: o.logLevel, Env: []string{"SSL_CERT_FILE=" + s.world.caFile},
	}, s.log)
	return s, err
}

// close stops what startMix started.
func (s *mixSetup) close() {
	if s.proc != nil {
		s.proc.Stop(10 * time.Second)
	}
	if s.log != nil {
		s.log.Close()
	}
	if s.world != nil {
		s.world.close()
	}
}

// mixRewarm is the messages of the unmeasured pass before a measured one.
const mixRewarm = 2000

// pass sends count messages, prints the pass's line unless w is nil, and
// returns its figures.
func (s *mixSetup) pass(ctx context.Context, o options, name string, count int, seed uint64, w io.Writer) (mixWarm, error) {
	n := s.world.domains
	r, err := mixPass(ctx, o, s.world, s.proc, s.lmtp, n, count, seed)
	if err != nil {
		return mixWarm{}, fmt.Errorf("%s pass: %w (log: %s)", name, err, s.log.Name())
	}
	deliveries := float64(max(r.Sink.Messages, 1))
	cpu := float64(r.CPU.Microseconds())
	if w == nil {
		return mixWarm{}, nil
	}
	rss, _ := e2e.ProcStatusBytes(s.proc.Pid(), "VmRSS")
	pool, series := scrape(s.metrics)
	fmt.Fprintf(w, "%8d %5s %8d %8.0f %10.0f %9.2f %10.0f %8.2f %8d %8d %8.3f %8.2f %8.2f %8.1f  %d, %s\n",
		n, name, r.Messages, float64(r.Messages)/r.Elapsed.Seconds(), float64(r.CPU.Microseconds())/float64(r.Messages),
		deliveries/float64(r.Messages), float64(r.CPU.Microseconds())/deliveries,
		float64(r.DNS)/float64(r.Messages), r.STSFetches, r.WKDFetches, float64(r.Handshakes)/float64(r.Messages),
		msf(percentile(r.Latency, 50)), msf(percentile(r.Latency, 99)), float64(rss)/(1<<20), series, pool)
	if r.Refused > 0 {
		fmt.Fprintf(w, "         %d of %d recipients not accepted (see %s)\n", r.Refused, r.Rcpts, s.log.Name())
	}
	return mixWarm{domains: n, rate: float64(r.Messages) / r.Elapsed.Seconds(), perMsg: cpu / float64(r.Messages),
		perDelivery: cpu / deliveries, rss: float64(rss) / (1 << 20)}, nil
}

// mixZipfS is the Zipf exponent of the domain draw: a few big domains,
// a long tail.
const mixZipfS = 1.1

// mixPass sends messages over o.mixSessions LMTP sessions
// and measures the pass.
func mixPass(ctx context.Context, o options, world *mixWorld, proc *e2e.Process, lmtp string, n, messages int, seed uint64) (mixRun, error) {
	r := mixRun{Domains: n, Messages: messages}
	sink0, hs0 := world.sinkTotals()
	dns0, sts0, wkd0 := len(world.dns.Queries()), world.stsFetches.Load(), world.wkdFetches.Load()
	cpu0, start := cpuTime(proc.Pid()), time.Now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, o.mixSessions)
	per := messages / o.mixSessions
	for s := range o.mixSessions {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(s)))
			var zipf *rand.Zipf
			if n > 1 {
				zipf = rand.NewZipf(rng, mixZipfS, 1, uint64(n-1))
			}
			lat, rcpts, refused, err := mixSession(ctx, lmtp, o, per, rng, zipf)
			mu.Lock()
			r.Latency, r.Rcpts, r.Refused = append(r.Latency, lat...), r.Rcpts+rcpts, r.Refused+refused
			mu.Unlock()
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	r.Messages = per * o.mixSessions
	r.Elapsed, r.CPU = time.Since(start), cpuTime(proc.Pid())-cpu0
	close(errs)
	if err := <-errs; err != nil {
		return r, err
	}
	sink1, hs1 := world.sinkTotals()
	r.Sink, r.Handshakes = sub(sink1, sink0), hs1-hs0
	r.DNS = int64(len(world.dns.Queries()) - dns0)
	r.STSFetches, r.WKDFetches = world.stsFetches.Load()-sts0, world.wkdFetches.Load()-wkd0
	return r, nil
}

// mixSession sends count messages on one LMTP connection.
func mixSession(ctx context.Context, addr string, o options, count int, rng *rand.Rand, zipf *rand.Zipf) (lat []time.Duration, rcpts, refused int, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, 0, 0, err
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = time.Minute, time.Minute
	if err := c.Hello("mta.bench.test"); err != nil {
		return nil, 0, 0, err
	}
	body := mixBody(o.size)
	for range count {
		if ctx.Err() != nil {
			return lat, rcpts, refused, ctx.Err()
		}
		to := map[string]bool{}
		for k := 1 + rng.IntN(4); len(to) < k; {
			d := 0
			if zipf != nil {
				d = int(zipf.Uint64())
			}
			to["u"+strconv.Itoa(rng.IntN(10))+"@"+mixDomain(d)] = true
		}
		t0 := time.Now()
		if err := c.Mail("sender@bench.test", nil); err != nil {
			return lat, rcpts, refused, err
		}
		for _, a := range slices.Sorted(maps(to)) {
			rcpts++
			if err := c.Rcpt(a, nil); err != nil {
				refused++
			}
		}
		wc, err := c.Data()
		if err != nil {
			return lat, rcpts, refused, err
		}
		wc.Write(body)
		resp, err := wc.CloseWithLMTPResponse()
		if err != nil {
			if lerr, ok := err.(smtp.LMTPDataError); ok {
				refused += len(lerr)
			} else {
				return lat, rcpts, refused, err
			}
		}
		_ = resp
		lat = append(lat, time.Since(t0))
	}
	c.Quit()
	return lat, rcpts, refused, nil
}

func maps(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// mixBody is a message of about size bytes.
func mixBody(size int) []byte {
	var b strings.Builder
	b.WriteString("From: sender@bench.test\r\nTo: mix@bench.test\r\nSubject: mix\r\n\r\n")
	for b.Len() < size {
		b.WriteString(strings.Repeat("x", 78) + "\r\n")
	}
	return []byte(b.String())
}

// scrape reads Caliop's /metrics: the pool and cache sizes it reports
// (caliop_cache_entries) and the number of series.
func scrape(addr string) (sizes string, series int) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "?", 0
	}
	defer resp.Body.Close()
	var parts []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series++
		if rest, ok := strings.CutPrefix(line, `caliop_cache_entries{cache="`); ok {
			name, v, _ := strings.Cut(rest, `"} `)
			parts = append(parts, name+"="+v)
		}
	}
	if len(parts) == 0 {
		return "-", series
	}
	return strings.Join(parts, ","), series
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
