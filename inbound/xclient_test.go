package inbound

import (
	"bufio"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeHop is a scripted next hop that offers XCLIENT, which mxtest (on
// go-smtp) cannot, and records every line it reads, body excluded.
type fakeHop struct {
	addr    string
	xclient string // attributes after the XCLIENT keyword; "" not offered
	xreply  string // reply to XCLIENT

	mu    sync.Mutex
	lines []string
}

func startFake(t *testing.T, xclient, xreply string) *fakeHop {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHop{addr: ln.Addr().String(), xclient: xclient, xreply: xreply}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); f.serve(conn) }()
		}
	}()
	return f
}

func (f *fakeHop) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	say := func(s string) { conn.Write([]byte(s + "\r\n")) }
	say("220 fake.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.lines = append(f.lines, line)
		f.mu.Unlock()
		switch verb, _, _ := strings.Cut(strings.ToUpper(line), " "); verb {
		case "EHLO":
			if f.xclient != "" {
				say("250-fake.test\r\n250-XCLIENT " + f.xclient + "\r\n250 8BITMIME")
			} else {
				say("250-fake.test\r\n250 8BITMIME")
			}
		case "XCLIENT":
			say(f.xreply)
		case "DATA":
			say("354 go on")
			for line != ".\r\n" && err == nil {
				line, err = r.ReadString('\n')
			}
			say("250 2.0.0 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("250 2.0.0 ok")
		}
	}
}

func (f *fakeHop) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// TestXCLIENT: the real client reaches the next hop through XCLIENT, with
// only the attributes it lists, followed by a new EHLO (XCLIENT_README).
func TestXCLIENT(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		offered  string
		greeting string // HELO or EHLO
		want     map[string]string
	}{
		{"all attributes", "NAME ADDR PORT PROTO HELO LOGIN DESTADDR", "EHLO", map[string]string{"NAME": "[UNAVAILABLE]", "ADDR": "127.0.0.1", "PORT": "*", "PROTO": "ESMTP", "HELO": "client.example"}},
		{"some attributes", "addr helo", "EHLO", map[string]string{"ADDR": "127.0.0.1", "HELO": "client.example"}},
		{"HELO client", "ADDR PROTO", "HELO", map[string]string{"ADDR": "127.0.0.1", "PROTO": "SMTP"}},
		{"not offered, allowed by the operator", "", "EHLO", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, tc.offered, "220 fake.test ESMTP")
			h := start(t, f.addr, func(o *Options) { o.AllowNoXCLIENT = tc.want == nil })
			c := h.dial()
			c.cmd(tc.greeting+" client.example", 250, "")
			c.envelope("alice@sender.example", "bob@example.org")
			if code, msg := c.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 || msg != "2.0.0 queued" {
				t.Errorf("end of DATA: %d %q", code, msg)
			}
			port := strconv.Itoa(c.conn.LocalAddr().(*net.TCPAddr).Port)
			lines := f.seen()
			next := 1
			if tc.want != nil {
				if len(lines) < 3 || !strings.HasPrefix(lines[1], "XCLIENT ") || lines[2] != "EHLO client.example" {
					t.Fatalf("next hop saw %q, want EHLO, XCLIENT, EHLO client.example", lines)
				}
				got := map[string]string{}
				for _, kv := range strings.Fields(lines[1])[1:] {
					k, v, _ := strings.Cut(kv, "=")
					got[k] = v
				}
				if tc.want["PORT"] == "*" {
					tc.want["PORT"] = port
				}
				if len(got) != len(tc.want) {
					t.Errorf("XCLIENT %q, want %v", lines[1], tc.want)
				}
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("XCLIENT %s=%q, want %q (%q)", k, got[k], v, lines[1])
					}
				}
				next = 3
			}
			if lines[0] != "EHLO "+hostname || len(lines) <= next || lines[next] != "MAIL FROM:<alice@sender.example>" {
				t.Errorf("next hop saw %q", lines)
			}
			for _, l := range lines[1:] {
				if tc.want == nil && strings.HasPrefix(l, "XCLIENT") {
					t.Errorf("XCLIENT sent though not offered: %q", l)
				}
			}
		})
	}
}

// TestNoXCLIENTFailsClosed: a next hop that does not offer XCLIENT, or
// offers it without ADDR, would see every client as Caliop and relay for
// it: MAIL gets 451 4.3.0 and nothing reaches the next hop.
func TestNoXCLIENTFailsClosed(t *testing.T) {
	t.Parallel()
	for name, offered := range map[string]string{"not offered": "", "without ADDR": "NAME HELO"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := startFake(t, offered, "220 fake.test ESMTP")
			h := start(t, f.addr, nil)
			c := h.dial()
			c.ehlo()
			c.cmd("MAIL FROM:<alice@sender.example>", 451, "4.3.0")
			for _, l := range f.seen() {
				if strings.HasPrefix(l, "MAIL") || strings.HasPrefix(l, "XCLIENT") {
					t.Errorf("next hop saw %q", l)
				}
			}
		})
	}
}

// TestXCLIENTRefusedFailsClosed: going on without XCLIENT would show the
// next hop Caliop's address instead of the client's.
func TestXCLIENTRefusedFailsClosed(t *testing.T) {
	t.Parallel()
	f := startFake(t, "NAME ADDR PORT PROTO HELO", "550 5.7.0 not authorized")
	h := start(t, f.addr, nil)
	c := h.dial()
	c.ehlo()
	c.cmd("MAIL FROM:<alice@sender.example>", 451, "4.3.0")
	for _, l := range f.seen() {
		if strings.HasPrefix(l, "MAIL") {
			t.Errorf("MAIL sent after a refused XCLIENT")
		}
	}
}

func TestXCLIENTCommand(t *testing.T) {
	t.Parallel()
	p := func(addr, helo string) peer {
		return peer{addr: mustAddrPort(t, addr), helo: helo, esmtp: true}
	}
	long := strings.Repeat("=", 200)
	tests := []struct {
		name, offered string
		p             peer
		want          string
	}{
		{"IPv4", "NAME ADDR PORT PROTO HELO", p("192.0.2.1:1234", "client.example"), "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=1234 PROTO=ESMTP HELO=client.example"},
		{"IPv6", "ADDR", p("[2001:db8::1]:25", "x"), "XCLIENT ADDR=IPV6:2001:db8::1"},
		{"IPv4-mapped", "ADDR", p("[::ffff:192.0.2.1]:25", "x"), "XCLIENT ADDR=192.0.2.1"},
		{"xtext HELO", "HELO", p("192.0.2.1:1", "a+b=c d\x01é"), "XCLIENT HELO=a+2Bb+3Dc+20d+01+C3+A9"},
		{"too long for 512", "NAME ADDR PORT PROTO HELO", p("192.0.2.1:1", long), "XCLIENT NAME=[UNAVAILABLE] ADDR=192.0.2.1 PORT=1 PROTO=ESMTP HELO=[UNAVAILABLE]"},
		{"none of ours", "LOGIN DESTADDR", p("192.0.2.1:1", "x"), ""},
	}
	for _, tc := range tests {
		if got := xclientCommand(tc.offered, tc.p); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := ehloName("a b", "me.example"); got != "me.example" {
		t.Errorf("ehloName with a space: %q", got)
	}
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}
