package mxtest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/internal/testworld/testpki"
)

func TestDeliverStoresExactBytes(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{})
	c := mustDialTLS(t, s, ca)
	st, _ := c.TLSConnectionState()

	// Lines that need dot-stuffing, a lone dot, 8-bit text and a
	// line that looks like a command must come through unchanged.
	body := "From: a@example.net\r\nSubject: test\r\n\r\n.leading dot\r\n..two dots\r\n.\r\ncaf\xc3\xa9\r\nMAIL FROM:<x@y>\r\nend\r\n"
	if err := c.Mail("a@example.net", &smtp.MailOptions{Size: int64(len(body))}); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	if err := sendData(c, body); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}

	msgs := s.WaitMessages(t, 1, 5*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !bytes.Equal(m.Data, []byte(body)) {
		t.Errorf("Data = %q\nwant   %q", m.Data, body)
	}
	if m.From != "a@example.net" || len(m.To) != 1 || m.To[0] != "b@example.org" {
		t.Errorf("envelope = %q -> %q", m.From, m.To)
	}
	if !m.TLS || m.TLSVersion != st.Version || m.TLSVersion < tls.VersionTLS12 {
		t.Errorf("TLS = %v version %x, client saw %x", m.TLS, m.TLSVersion, st.Version)
	}
	if m.ServerName != mxName {
		t.Errorf("ServerName = %q, want %q", m.ServerName, mxName)
	}
	if m.MailOpts.Body != smtp.Body8BitMIME || m.MailOpts.Size != int64(len(body)) {
		t.Errorf("MailOpts = %+v, want BODY=8BITMIME SIZE=%d", m.MailOpts, len(body))
	}
	if n := s.MailCount(); n != 1 {
		t.Errorf("MailCount = %d, want 1", n)
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}
	got := strings.Join(verbs(s.Commands()), " ")
	if want := "EHLO STARTTLS EHLO MAIL RCPT DATA QUIT"; got != want {
		t.Errorf("command verbs = %q, want %q (all: %q)", got, want, s.Commands())
	}
	if cmds := s.Commands(); len(cmds) > 2 && cmds[2] != "EHLO relay.test" {
		t.Errorf("EHLO after STARTTLS = %q", cmds[2])
	}
	// A returned copy must not alias the stored message.
	m.Data[0] = 'X'
	if s.Messages()[0].Data[0] != 'F' {
		t.Error("Messages returned the stored slice")
	}
}

func TestReplies(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	tests := []struct {
		name     string
		b        Behavior
		rcpts    []string
		mailCode int      // reply code to MAIL; 0: accepted
		rcptCode []int    // per recipient; 0: accepted
		dataCode int      // final reply code to DATA; 0: accepted
		wantTo   []string // envelope stored; nil: no message
	}{
		{
			name:   "all accepted",
			rcpts:  []string{"b@example.org"},
			wantTo: []string{"b@example.org"},
		},
		{
			name:     "MAIL refused 451",
			b:        Behavior{MailReply: &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try later"}},
			rcpts:    []string{"b@example.org"},
			mailCode: 451,
		},
		{
			name: "one RCPT refused 550",
			b: Behavior{RcptReply: map[string]*smtp.SMTPError{
				"bad@example.org": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"},
			}},
			rcpts:    []string{"good@example.org", "bad@example.org", "also@example.org"},
			rcptCode: []int{0, 550, 0},
			wantTo:   []string{"good@example.org", "also@example.org"},
		},
		{
			name:     "DATA refused 554",
			b:        Behavior{DataReply: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "content rejected"}},
			rcpts:    []string{"b@example.org"},
			dataCode: 554,
		},
		{
			name:     "body over MaxSize 552",
			b:        Behavior{MaxSize: 10},
			rcpts:    []string{"b@example.org"},
			dataCode: 552,
		},
		{
			name:     "DATA deferred 452",
			b:        Behavior{DataReply: &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "disk full"}},
			rcpts:    []string{"b@example.org"},
			dataCode: 452,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, mxName, ca, tt.b)
			c := mustDialTLS(t, s, ca)
			err := c.Mail("a@example.net", nil)
			if got := code(err); got != tt.mailCode || (tt.mailCode == 0 && err != nil) {
				t.Fatalf("MAIL: code %d (%v), want %d", got, err, tt.mailCode)
			}
			if n := s.MailCount(); n != 1 {
				t.Errorf("MailCount = %d, want 1", n)
			}
			if tt.mailCode != 0 {
				if e := (*smtp.SMTPError)(nil); errors.As(err, &e) && e.Temporary() != (tt.mailCode/100 == 4) {
					t.Errorf("Temporary() = %v for %d", e.Temporary(), tt.mailCode)
				}
				if n := len(s.Messages()); n != 0 {
					t.Errorf("%d messages after refused MAIL", n)
				}
				return
			}
			for i, r := range tt.rcpts {
				want := 0
				if tt.rcptCode != nil {
					want = tt.rcptCode[i]
				}
				if got := code(c.Rcpt(r, nil)); got != want {
					t.Errorf("RCPT %s: code %d, want %d", r, got, want)
				}
			}
			err = sendData(c, "Subject: x\r\n\r\nbody\r\n")
			if got := code(err); got != tt.dataCode || (tt.dataCode == 0 && err != nil) {
				t.Fatalf("DATA: code %d (%v), want %d", got, err, tt.dataCode)
			}
			c.Quit()
			msgs := s.Messages()
			if tt.wantTo == nil {
				if len(msgs) != 0 {
					t.Fatalf("%d messages stored, want none", len(msgs))
				}
				return
			}
			if len(msgs) != 1 || strings.Join(msgs[0].To, ",") != strings.Join(tt.wantTo, ",") {
				t.Fatalf("messages = %+v, want one to %q", msgs, tt.wantTo)
			}
		})
	}
}

func TestGreetReply(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{GreetReply: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "busy"}})
	c := dialPlain(t, s)
	if err := c.Hello("relay.test"); code(err) != 421 {
		t.Fatalf("EHLO: %v, want 421", err)
	}
	if n := s.MailCount(); n != 0 {
		t.Errorf("MailCount = %d, want 0", n)
	}
}

func TestDropInData(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{DropInData: true})
	c := mustDialTLS(t, s, ca)
	if err := c.Mail("a@example.net", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	body := "Subject: x\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 4000)
	err := sendData(c, body)
	if err == nil {
		t.Fatal("DATA succeeded, want a connection error")
	}
	if code(err) != 0 {
		t.Fatalf("DATA got SMTP reply %v, want no reply", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages stored, want none", n)
	}
	if n := s.MailCount(); n != 1 {
		t.Errorf("MailCount = %d, want 1", n)
	}
}

func TestNoSTARTTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{NoSTARTTLS: true})

	if _, err := dialTLS(t, s, ca); err == nil {
		t.Fatal("STARTTLS succeeded on a server without it")
	}
	c := dialPlain(t, s)
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Fatal("STARTTLS advertised")
	}
	if err := c.Mail("a@example.net", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	if err := sendData(c, "Subject: x\r\n\r\nplain\r\n"); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	if m.TLS || m.TLSVersion != 0 || m.ServerName != "" {
		t.Fatalf("plaintext message recorded TLS=%v version %x SNI %q", m.TLS, m.TLSVersion, m.ServerName)
	}
}

func TestExtensions(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	tests := []struct {
		name    string
		b       Behavior
		plain   bool              // inspect the EHLO reply before STARTTLS
		want    map[string]string // keyword -> parameter
		notWant []string
	}{
		{
			name:    "defaults after TLS",
			want:    map[string]string{"8BITMIME": "", "PIPELINING": "", "CHUNKING": "", "ENHANCEDSTATUSCODES": "", "SIZE": ""},
			notWant: []string{"STARTTLS", "SMTPUTF8", "REQUIRETLS"},
		},
		{
			name:  "defaults before TLS",
			plain: true,
			want:  map[string]string{"STARTTLS": "", "8BITMIME": ""},
		},
		{
			name:    "hide 8BITMIME",
			b:       Behavior{HideExtensions: []string{"8bitmime"}},
			want:    map[string]string{"PIPELINING": "", "CHUNKING": "", "SIZE": ""},
			notWant: []string{"8BITMIME"},
		},
		{
			name:    "hide the last keyword",
			b:       Behavior{HideExtensions: []string{"SIZE", "PIPELINING", "CHUNKING"}},
			want:    map[string]string{"8BITMIME": "", "ENHANCEDSTATUSCODES": ""},
			notWant: []string{"SIZE", "PIPELINING", "CHUNKING"},
		},
		{
			name:    "hide STARTTLS",
			b:       Behavior{HideExtensions: []string{"STARTTLS"}},
			plain:   true,
			want:    map[string]string{"8BITMIME": ""},
			notWant: []string{"STARTTLS"},
		},
		{
			name: "SMTPUTF8, REQUIRETLS and SIZE",
			b:    Behavior{SMTPUTF8: true, REQUIRETLS: true, MaxSize: 1000},
			want: map[string]string{"SMTPUTF8": "", "REQUIRETLS": "", "SIZE": "1000"},
		},
		{
			name:    "REQUIRETLS only after TLS",
			b:       Behavior{REQUIRETLS: true},
			plain:   true,
			want:    map[string]string{"STARTTLS": ""},
			notWant: []string{"REQUIRETLS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, mxName, ca, tt.b)
			var c *smtp.Client
			if tt.plain {
				c = dialPlain(t, s)
			} else {
				c = mustDialTLS(t, s, ca)
			}
			for k, v := range tt.want {
				if ok, p := c.Extension(k); !ok || p != v {
					t.Errorf("Extension(%s) = %v %q, want true %q", k, ok, p, v)
				}
			}
			for _, k := range tt.notWant {
				if ok, _ := c.Extension(k); ok {
					t.Errorf("Extension(%s) advertised", k)
				}
			}
		})
	}
}

func TestMailOptions(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{SMTPUTF8: true, REQUIRETLS: true, MaxSize: 1000, HideExtensions: []string{"8BITMIME"}})
	c := mustDialTLS(t, s, ca)

	if err := c.Mail("a@example.net", &smtp.MailOptions{Size: 2000}); code(err) != 552 {
		t.Fatalf("MAIL SIZE=2000: %v, want 552", err)
	}
	if err := c.Mail("ü@example.net", &smtp.MailOptions{UTF8: true, RequireTLS: true, Size: 100}); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	if err := sendData(c, "Subject: x\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if n := s.MailCount(); n != 2 {
		t.Errorf("MailCount = %d, want 2 (a refused MAIL counts)", n)
	}
	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	want := smtp.MailOptions{UTF8: true, RequireTLS: true, Size: 100}
	if m.MailOpts != want || m.From != "ü@example.net" {
		t.Fatalf("MailOpts = %+v from %q, want %+v (no BODY: 8BITMIME hidden)", m.MailOpts, m.From, want)
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{Delay: 2 * time.Second})
	c := mustDialTLS(t, s, ca)
	c.SubmissionTimeout = 200 * time.Millisecond
	if err := c.Mail("a@example.net", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	start := time.Now()
	err := sendData(c, "Subject: x\r\n\r\nx\r\n")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("DATA: %v, want a timeout", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("timed out after %v, want about 200ms", d)
	}
	// The server did accept it after the delay: the duplicate a relay
	// must expect when it gives up on the final reply.
	s.WaitMessages(t, 1, 5*time.Second)
}

func TestCertificateVerification(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	now := time.Now()
	tests := []struct {
		name string
		leaf testpki.LeafOptions
		want func(error) bool
	}{
		{
			name: "expired",
			leaf: testpki.LeafOptions{Names: []string{mxName}, NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)},
			want: func(err error) bool {
				var e x509.CertificateInvalidError
				return errors.As(err, &e) && e.Reason == x509.Expired
			},
		},
		{
			name: "wrong name",
			leaf: testpki.LeafOptions{Names: []string{"mx.other.example"}},
			want: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) },
		},
		{
			name: "self-signed",
			leaf: testpki.LeafOptions{Names: []string{mxName}, SelfSigned: true},
			want: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) },
		},
		{
			name: "valid",
			leaf: testpki.LeafOptions{Names: []string{mxName}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			leaf := ca.Leaf(t, tt.leaf)
			s := Start(t, mxName, ca, Behavior{Cert: &leaf})
			c, err := dialTLS(t, s, ca)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("STARTTLS: %v", err)
				}
				if err := c.Mail("a@example.net", nil); err != nil {
					t.Fatalf("MAIL: %v", err)
				}
				if n := s.MailCount(); n != 1 {
					t.Fatalf("MailCount = %d, want 1", n)
				}
				return
			}
			if err == nil {
				t.Fatal("STARTTLS verified a bad certificate")
			}
			if !tt.want(err) {
				t.Fatalf("error %T %v is not the expected x509 error", err, err)
			}
			if n := s.MailCount(); n != 0 {
				t.Fatalf("MailCount = %d, want 0", n)
			}
		})
	}
}

func TestEHLORequiredAfterSTARTTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{})
	tp := rawTLS(t, s, ca)
	cmd(t, tp, 503, "MAIL FROM:<a@example.net>")
	cmd(t, tp, 250, "EHLO relay.test")
	cmd(t, tp, 250, "MAIL FROM:<a@example.net>")
	if n := s.MailCount(); n != 2 {
		t.Fatalf("MailCount = %d, want 2", n)
	}
}

func TestBDAT(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t)
	s := Start(t, mxName, ca, Behavior{})
	tp := rawTLS(t, s, ca)
	cmd(t, tp, 250, "EHLO relay.test")
	cmd(t, tp, 250, "MAIL FROM:<a@example.net>")
	cmd(t, tp, 250, "RCPT TO:<b@example.org>")
	chunk1 := "Subject: x\r\n\r\nMAIL FROM:<no@x>\r\nSTARTTLS\r\n."
	chunk2 := "\r\n.\r\nend\r\n"
	fmt.Fprintf(tp.W, "BDAT %d\r\n%s", len(chunk1), chunk1)
	tp.W.Flush()
	expect(t, tp, 250)
	fmt.Fprintf(tp.W, "BDAT %d LAST\r\n%s", len(chunk2), chunk2)
	tp.W.Flush()
	expect(t, tp, 250)
	cmd(t, tp, 221, "QUIT")

	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	if string(m.Data) != chunk1+chunk2 {
		t.Errorf("Data = %q, want %q", m.Data, chunk1+chunk2)
	}
	if !m.TLS {
		t.Error("TLS = false")
	}
	if n := s.MailCount(); n != 1 {
		t.Errorf("MailCount = %d, want 1 (chunk content is not a command)", n)
	}
	got := strings.Join(verbs(s.Commands()), " ")
	if want := "EHLO STARTTLS EHLO MAIL RCPT BDAT BDAT QUIT"; got != want {
		t.Errorf("command verbs = %q, want %q", got, want)
	}
}

func TestStartStopsOnCleanup(t *testing.T) {
	ca := testpki.NewCA(t)
	var addr string
	t.Run("server", func(t *testing.T) {
		s := Start(t, mxName, ca, Behavior{Delay: time.Minute})
		addr = s.Addr
		c := mustDialTLS(t, s, ca)
		c.Mail("a@example.net", nil)
		c.Rcpt("b@example.org", nil)
		w, err := c.Data()
		if err != nil {
			t.Fatalf("DATA: %v", err)
		}
		w.Write([]byte("x\r\n"))
		// Leave the server inside its one-minute delay: cleanup must
		// still stop it promptly.
		go w.Close()
		time.Sleep(100 * time.Millisecond)
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after cleanup", addr)
	}
}
