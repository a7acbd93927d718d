package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-smtp"
)

// sourceRun is one smtp-source run against one server.
type sourceRun struct {
	Target   string // "direct" or "caliop"
	Addr     string
	Sessions int
	Messages int
	Elapsed  time.Duration
	CPU      time.Duration // caliop's CPU time during the run; 0 for direct
	// SinkCPU is this process's CPU time during the run: the sink's
	// (the DNS server and the wait for smtp-source cost next to
	// nothing). Direct, it is the server half of the relay's work (an
	// SMTP server taking the messages); via Caliop, the client half
	// (the other end of a TLS SMTP session).
	SinkCPU time.Duration
	Sink    sinkCounts // sink counters added during the run
}

// perMessage is d divided among the run's messages.
func (r sourceRun) perMessage(d time.Duration) time.Duration {
	return d / time.Duration(max(r.Messages, 1))
}

func (r sourceRun) Rate() float64 { return float64(r.Messages) / r.Elapsed.Seconds() }

// runSource runs smtp-source (Postfix's load generator) with sessions
// parallel sessions sending messages messages of size payload bytes to
// addr, each session keeping its connection (-d), and times it.
func runSource(ctx context.Context, bin string, o options, addr string, sessions, messages int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, o.runTimeout)
	defer cancel()
	args := []string{
		"-s", fmt.Sprint(sessions),
		"-m", fmt.Sprint(messages),
		"-l", fmt.Sprint(o.size),
		"-M", "client.origin.test",
		"-f", "sender@origin.test",
		"-t", "rcpt@" + o.domain,
		"-S", "caliop bench",
	}
	if o.keepConn {
		args = append(args, "-d")
	}
	cmd := exec.CommandContext(ctx, bin, append(args, "inet:"+addr)...)
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return elapsed, fmt.Errorf("smtp-source %s: %w\n%s", strings.Join(cmd.Args[1:], " "), err, out.String())
	}
	return elapsed, nil
}

// latency holds the durations of sequential transactions on one connection.
type latency struct {
	EndOfData []time.Duration // from the final "." sent to the reply read
	Whole     []time.Duration // from MAIL FROM to the reply after DATA
}

// measureLatency sends n messages one after another over one plaintext
// SMTP connection to addr and times each.
func measureLatency(o options, addr string, n int) (latency, error) {
	var lat latency
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return lat, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(o.runTimeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.origin.test"); err != nil {
		return lat, err
	}
	body := message(o.size)
	for i := range n {
		t0 := time.Now()
		if err := c.Mail("sender@origin.test", nil); err != nil {
			return lat, fmt.Errorf("message %d: %w", i, err)
		}
		if err := c.Rcpt("rcpt@"+o.domain, nil); err != nil {
			return lat, fmt.Errorf("message %d: %w", i, err)
		}
		w, err := c.Data()
		if err != nil {
			return lat, fmt.Errorf("message %d: %w", i, err)
		}
		if _, err := w.Write(body); err != nil {
			return lat, fmt.Errorf("message %d: %w", i, err)
		}
		t1 := time.Now()
		if err := w.Close(); err != nil {
			return lat, fmt.Errorf("message %d: end of data: %w", i, err)
		}
		t2 := time.Now()
		lat.EndOfData = append(lat.EndOfData, t2.Sub(t1))
		lat.Whole = append(lat.Whole, t2.Sub(t0))
	}
	c.Quit()
	return lat, nil
}

// message returns a message with a header and size bytes of body in
// 76-character lines, like smtp-source's payload.
func message(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: <sender@origin.test>\r\nTo: <rcpt@bench>\r\nSubject: caliop latency\r\n\r\n")
	line := strings.Repeat("x", 76) + "\r\n"
	for n := 0; n < size; n += len(line) {
		b.WriteString(line[:min(len(line), size-n)])
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// percentile returns the p-th percentile (0 < p ≤ 100, nearest rank).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(rank, len(s)-1))]
}
