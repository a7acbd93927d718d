package inbound

import (
	"crypto/tls"
	"io"
	"net"
	"net/textproto"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caliop/relay/internal/testworld/mxtest"
)

func TestRequireTLS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		partners []string
		all      bool
		from     string
		plain    int // reply to MAIL in plaintext
	}{
		{"partner in plaintext", []string{"partner.example"}, false, "alice@Partner.Example", 530},
		{"other sender in plaintext", []string{"partner.example"}, false, "alice@other.example", 250},
		{"subdomain of a partner listed without dot", []string{"partner.example"}, false, "alice@sub.partner.example", 250},
		{"subdomain of a .partner", []string{".partner.example"}, false, "alice@mx.sub.partner.example", 530},
		{".partner does not cover the parent", []string{".partner.example"}, false, "alice@partner.example", 250},
		{"all: any sender", nil, true, "alice@other.example", 530},
		{"all: null sender", nil, true, "", 530},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, mx := startMX(t, mxtest.Behavior{}, func(o *Options) {
				o.RequireTLSFrom, o.RequireTLSAll = tc.partners, tc.all
			})
			c := h.dial()
			c.ehlo()
			prefix := ""
			if tc.plain == 530 {
				prefix = "5.7.0 Must issue a STARTTLS command first"
			}
			c.cmd("MAIL FROM:<"+tc.from+">", tc.plain, prefix)
			if tc.plain == 530 && mx.MailCount() != 0 {
				t.Errorf("next hop saw MAIL from a sender refused for plaintext")
			}
			c.cmd("RSET", 250, "")
			c.startTLS(h.ca)
			c.ehlo()
			c.envelope(tc.from, "bob@example.org")
			if code, _ := c.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 {
				t.Errorf("over TLS: %d, want 250", code)
			}
		})
	}
}

func TestSTARTTLS(t *testing.T) {
	t.Parallel()
	h, mx := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	ehlo := c.ehlo()
	for _, want := range []string{"\nSTARTTLS", "\nSIZE 52428800", "\n8BITMIME", "\nSMTPUTF8", "\nPIPELINING"} {
		if !strings.Contains(ehlo, want) {
			t.Errorf("EHLO lacks %q: %q", want[1:], ehlo)
		}
	}
	if strings.Contains(ehlo, "AUTH") {
		t.Errorf("EHLO offers AUTH: %q", ehlo)
	}
	c.cmd("MAIL FROM:<alice@sender.example>", 250, "")
	st := c.startTLS(h.ca)
	if st.Version < 0x0303 {
		t.Errorf("TLS version %x", st.Version)
	}
	// RFC 3207 §4.2: the transaction and the EHLO are forgotten.
	c.cmd("RCPT TO:<bob@example.org>", 503, "5.5.1")
	c.cmd("MAIL FROM:<alice@sender.example>", 503, "5.5.1")
	if ehlo := c.ehlo(); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered inside TLS: %q", ehlo)
	}
	c.cmd("STARTTLS", 502, "")
	c.cmd("RCPT TO:<bob@example.org>", 502, "") // no MAIL since EHLO
	c.envelope("alice@sender.example", "bob@example.org")
	if code, _ := c.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 {
		t.Errorf("end of DATA: %d", code)
	}
	if n := len(mx.Messages()); n != 1 {
		t.Errorf("messages: %d", n)
	}

	// Without a certificate STARTTLS is neither offered nor accepted.
	h2, _ := startMX(t, mxtest.Behavior{}, func(o *Options) { o.TLS = nil })
	c2 := h2.dial()
	if ehlo := c2.ehlo(); strings.Contains(ehlo, "STARTTLS") {
		t.Errorf("STARTTLS offered without TLS config: %q", ehlo)
	}
	c2.cmd("STARTTLS", 502, "")
}

func TestStatsCountPlaintextAndTLSPerSendingDomain(t *testing.T) {
	t.Parallel()
	h, _ := startMX(t, mxtest.Behavior{}, nil)
	plain := h.dial()
	plain.ehlo()
	plain.envelope("a@a.example", "bob@example.org")
	plain.cmd("RSET", 250, "")
	plain.envelope("b@A.EXAMPLE", "bob@example.org")
	plain.cmd("RSET", 250, "")
	plain.envelope("", "bob@example.org")
	plain.cmd("RSET", 250, "")

	secure := h.dial()
	secure.ehlo()
	secure.startTLS(h.ca)
	secure.ehlo()
	secure.envelope("c@a.example", "bob@example.org")
	if code, _ := secure.data("Subject: x\r\n\r\nhi\r\n.\r\n"); code != 250 {
		t.Fatalf("end of DATA: %d", code)
	}
	want := map[string]TLSCounts{"a.example": {Plain: 2, TLS: 1}, "": {Plain: 1}}
	if got := h.stats.Sessions(); !reflect.DeepEqual(got, want) {
		t.Errorf("Sessions() = %v, want %v", got, want)
	}
}

func TestStatsOverflow(t *testing.T) {
	t.Parallel()
	var s Stats
	for i := range MaxStatsDomains + 5 {
		s.add(strings.Repeat("x", i%7)+string(rune('a'+i%26))+".example"+strings.Repeat("z", i/182), i%2 == 0)
	}
	got := s.Sessions()
	if len(got) != MaxStatsDomains+1 || got[OtherDomains].Plain+got[OtherDomains].TLS == 0 {
		t.Errorf("%d keys, other = %v", len(got), got[OtherDomains])
	}
	var nilStats *Stats
	nilStats.add("a.example", true) // must not panic
}

// TestQuitClosesTLS: QUIT gets 221, then close_notify, then the TCP
// close. Go's TLS client reads io.EOF either way, so the test looks at
// the raw bytes: over TLS 1.2 an alert record (type 21) is visible, and
// it must be all that follows the 221.
func TestQuitClosesTLS(t *testing.T) {
	t.Parallel()
	h, _ := startMX(t, mxtest.Behavior{}, nil)
	c := h.dial()
	c.ehlo()
	c.cmd("STARTTLS", 220, "2.0.0")
	raw := &recordingConn{Conn: c.conn}
	tc := tls.Client(raw, &tls.Config{ServerName: hostname, RootCAs: h.ca.Pool, MaxVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.text = tc, textproto.NewConn(tc)
	c.ehlo()
	c.cmd("QUIT", 221, "")
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := c.conn.Read(make([]byte, 16)); err != io.EOF {
		t.Errorf("after 221: %v, want io.EOF", err)
	}
	if last := raw.lastRecordType(); last != 21 {
		t.Errorf("the last TLS record before the TCP close has type %d, want 21 (alert: close_notify)", last)
	}
}

// recordingConn keeps every byte read from the connection.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

// lastRecordType walks the TLS records read (5-byte headers: type,
// version, length) and returns the type of the last whole one.
func (r *recordingConn) lastRecordType() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := -1
	for b := r.got; len(b) >= 5; {
		n := 5 + int(b[3])<<8 + int(b[4])
		if n > len(b) {
			break
		}
		last, b = int(b[0]), b[n:]
	}
	return last
}

// TestSilentNextHop: a next hop that accepts and never greets costs the
// client NextHopTimeout, then 451 4.3.0.
func TestSilentNextHop(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	h := start(t, ln.Addr().String(), func(o *Options) { o.NextHopTimeout = 300 * time.Millisecond })
	c := h.dial()
	c.ehlo()
	start := time.Now()
	c.cmd("MAIL FROM:<alice@sender.example>", 451, "4.3.0")
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("451 after %v, want about the next hop timeout", took)
	}
}
